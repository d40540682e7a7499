"""The pure proof-builder half: slot layouts and call planning."""

from __future__ import annotations

from eth_hash.auto import keccak

from proofs.builder import Layout, MappingSlots, plan
from proofs.slots import solidity_mapping_slot, vyper_mapping_slot

TRADER = bytes.fromhex("3c44cdddb6a900fa2b585dd299e03d12fa4293bc")


def test_layouts_follow_each_compiler() -> None:
    word = TRADER.rjust(32, b"\0")
    base = (3).to_bytes(32, "big")
    assert solidity_mapping_slot(3, TRADER) == int.from_bytes(keccak(word + base), "big")
    assert vyper_mapping_slot(3, TRADER) == int.from_bytes(keccak(base + word), "big")
    assert MappingSlots(Layout.VYPER, 3).slot_of(TRADER) == vyper_mapping_slot(3, TRADER)
    assert MappingSlots(Layout.SOLIDITY, 3).slot_of(TRADER) == solidity_mapping_slot(3, TRADER)


def test_plan_dedupes_sorts_and_chunks() -> None:
    requests = plan("0xabc", 7, [5, 1, 5, 3, 9, 1, 2], max_slots_per_call=2)
    assert [r.slots for r in requests] == [(1, 2), (3, 5), (9,)]
    assert {(r.address, r.block_number) for r in requests} == {("0xabc", 7)}
