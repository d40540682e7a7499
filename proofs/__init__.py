"""Trust from first principles: block hashes recomputed, Merkle-Patricia proofs verified.

Leaf package: rlp, eth-hash and the standard library only; no I/O.
"""

from proofs.account import (
    Account,
    VerifiedAccount,
    verify_account,
    verify_get_proof,
    verify_get_proofs,
    verify_storage,
)
from proofs.errors import ProofError
from proofs.header import BlockHeader, header_from_rlp, header_from_rpc
from proofs.mpt import NodeCache, verify_proof
from proofs.slots import solidity_mapping_slot, vyper_mapping_slot

__all__ = [
    "Account",
    "BlockHeader",
    "NodeCache",
    "ProofError",
    "VerifiedAccount",
    "header_from_rlp",
    "header_from_rpc",
    "solidity_mapping_slot",
    "verify_account",
    "verify_get_proof",
    "verify_get_proofs",
    "verify_proof",
    "verify_storage",
    "vyper_mapping_slot",
]
