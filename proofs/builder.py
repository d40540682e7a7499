"""The pure half of the proof builder: which slots to ask for, in which calls, and
what the verified answers say.

The relayer's I/O half (``relayer/proof_fetcher.py``) sends the planned
``eth_getProof`` calls and hands the answers back here to be verified.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from proofs.account import verify_get_proofs
from proofs.errors import ValueMismatch
from proofs.slots import solidity_mapping_slot, vyper_mapping_slot


class Layout(enum.Enum):
    """How a compiler places ``mapping[key]`` in storage."""

    VYPER = "vyper"
    SOLIDITY = "solidity"


@dataclass(frozen=True)
class MappingSlots:
    """The storage slots of one mapping variable."""

    layout: Layout
    base_slot: int

    def slot_of(self, key: bytes | int) -> int:
        if self.layout is Layout.VYPER:
            return vyper_mapping_slot(self.base_slot, key)
        return solidity_mapping_slot(self.base_slot, key)


@dataclass(frozen=True)
class ProofRequest:
    """One ``eth_getProof`` call: an account and a chunk of its slots at one block."""

    address: str
    block_number: int
    slots: tuple[int, ...]


@dataclass(frozen=True)
class ProvenSlot:
    value: int
    proof: tuple[str, ...]  # the storage proof's nodes, as the node sent them


@dataclass(frozen=True)
class ProvenSlots:
    account_proof: tuple[str, ...]
    slots: Mapping[int, ProvenSlot]


def plan(address: str, block_number: int, slots: Iterable[int],
         max_slots_per_call: int) -> list[ProofRequest]:
    """Distinct slots, sorted, in calls of at most ``max_slots_per_call``."""
    unique = sorted(set(slots))
    return [ProofRequest(address, block_number, tuple(unique[i : i + max_slots_per_call]))
            for i in range(0, len(unique), max_slots_per_call)]


def verify_answers(state_root: bytes, address: str,
                   answers: Sequence[Mapping[str, object]]) -> ProvenSlots:
    """Verify every answer of one account at one block; the proven slots with their proofs."""
    verified = verify_get_proofs(state_root, answers)
    slots: dict[int, ProvenSlot] = {}
    for answer, account in zip(answers, verified, strict=True):
        if account.address.hex() != address.lower().removeprefix("0x"):
            raise ValueMismatch("eth_getProof address", address, "0x" + account.address.hex())
        for entry in answer["storageProof"]:  # type: ignore[attr-defined]
            slot = int(entry["key"], 16)
            slots[slot] = ProvenSlot(account.storage[slot], tuple(entry["proof"]))
    return ProvenSlots(tuple(answers[0]["accountProof"]), slots)  # type: ignore[arg-type]
