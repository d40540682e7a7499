"""The proof a destination vault believes: the source vault's receipt slot for an
order, in a final header of the source chain (EIP-1186 account and storage proofs).

The relayer verifies the proof itself before it sends it (``proofs``, the same walk the
contract's ``mpt`` module does), so a provider's bad proof is refused here with what
mismatched rather than by a reverted transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from proofs.account import verify_get_proof
from proofs.errors import ValueMismatch
from proofs.header import BlockHeader
from proofs.keccak import keccak
from proofs.slots import vyper_mapping_slot
from relayer.contracts import compiled
from wire.eip712 import word
from wire.records import SettlementOrder


def receipts_base_slot() -> int:
    return compiled("ClearingVault").slot_of("receipts")


def order_id(trader: str, nonce: int) -> bytes:
    """keccak256(abi_encode(trader, nonce)): the key of an order on both vaults."""
    return keccak(word(bytes.fromhex(trader[2:])) + word(nonce))


def receipt_slot(order: SettlementOrder) -> int:
    return vyper_mapping_slot(receipts_base_slot(), order_id(order.trader, order.nonce))


@dataclass(frozen=True)
class ReceiptProof:
    """What ``ClearingVault.credit`` takes besides the order and the header signatures."""

    header: BlockHeader
    account_proof: tuple[bytes, ...]
    storage_proof: tuple[bytes, ...]


def check_receipt(order: SettlementOrder, header: BlockHeader, answer: Any) -> ReceiptProof:
    """The proof in an ``eth_getProof`` answer for the order's receipt slot, verified
    against ``header``'s state root: it must be the source vault's account and prove the
    slot holds the order's hash. Raises a ``ProofError`` naming what mismatched."""
    proven = verify_get_proof(header.state_root, answer)
    if "0x" + proven.address.hex() != order.src_vault:
        raise ValueMismatch("account", order.src_vault, "0x" + proven.address.hex())
    slot = receipt_slot(order)
    held = proven.storage.get(slot)
    expected = int.from_bytes(order.struct_hash(), "big")
    if held != expected:
        raise ValueMismatch(f"receipt slot 0x{slot:x}", hex(expected), hex(held or 0))
    entry = next(e for e in answer["storageProof"] if int(e["key"], 16) == slot)
    return ReceiptProof(header=header,
                        account_proof=tuple(bytes.fromhex(n[2:]) for n in answer["accountProof"]),
                        storage_proof=tuple(bytes.fromhex(n[2:]) for n in entry["proof"]))
