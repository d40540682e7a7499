"""Storage slots of mapping entries, per compiler layout.

Solidity: ``keccak256(pad32(key) ‖ pad32(base_slot))``.
Vyper:    ``keccak256(pad32(base_slot) ‖ pad32(key))`` (the slot comes first).
"""

from __future__ import annotations

from proofs.keccak import keccak


def _word(value: bytes | int) -> bytes:
    if isinstance(value, int):
        return value.to_bytes(32, "big")
    return value.rjust(32, b"\x00")


def solidity_mapping_slot(base_slot: int, key: bytes | int) -> int:
    return int.from_bytes(keccak(_word(key) + _word(base_slot)), "big")


def vyper_mapping_slot(base_slot: int, key: bytes | int) -> int:
    return int.from_bytes(keccak(_word(base_slot) + _word(key)), "big")
