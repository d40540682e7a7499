"""The pure half of the proof builder: which slots to ask for, in which calls, and
what the verified answers say.

The relayer's I/O half (``relayer/proof_fetcher.py``) sends the planned
``eth_getProof`` calls and hands the answers back here to be verified.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from proofs.account import verify_get_proof
from proofs.errors import ValueMismatch
from proofs.mpt import NodeCache
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


def verify_answer(state_root: bytes, address: str, answer: Mapping[str, object],
                  cache: NodeCache | None = None) -> ProvenSlots:
    """Verify one answer for ``address``; its proven slots with their proofs."""
    account = verify_get_proof(state_root, answer, cache)
    if account.address.hex() != address.lower().removeprefix("0x"):
        raise ValueMismatch("eth_getProof address", address, "0x" + account.address.hex())
    slots = {int(entry["key"], 16): ProvenSlot(account.storage[int(entry["key"], 16)],
                                               tuple(entry["proof"]))
             for entry in answer["storageProof"]}  # type: ignore[attr-defined]
    return ProvenSlots(tuple(answer["accountProof"]), slots)  # type: ignore[arg-type]


def merge(parts: Sequence[ProvenSlots]) -> ProvenSlots:
    """The slots of several verified answers of one account at one block."""
    return ProvenSlots(parts[0].account_proof,
                       {slot: proven for part in parts for slot, proven in part.slots.items()})

