"""Errors raised while checking headers and proofs.

Tree::

    ProofError
    ├── MalformedInput          input that cannot be decoded (bad hex, bad RLP, missing field)
    ├── HeaderHashMismatch      keccak(RLP(header)) differs from the hash the chain reported
    ├── NodeHashMismatch        a proof node does not hash to the reference that points at it
    ├── ProofIncomplete         the proof ends before the key's path does
    ├── ProofHasExtraNodes      nodes left over after the path ended
    ├── InvalidNode             a node is neither a branch, an extension nor a leaf
    └── ValueMismatch           a proven value differs from the one claimed
"""

from __future__ import annotations


class ProofError(Exception):
    """Root of every error in ``proofs``."""


class MalformedInput(ProofError):
    def __init__(self, what: str, detail: str) -> None:
        super().__init__(f"malformed {what}: {detail}")
        self.what = what
        self.detail = detail


class HeaderHashMismatch(ProofError):
    def __init__(self, number: int, expected_hash: bytes, actual_hash: bytes) -> None:
        super().__init__(
            f"header {number}: reported hash 0x{expected_hash.hex()} "
            f"but keccak(RLP(header)) is 0x{actual_hash.hex()}"
        )
        self.number = number
        self.expected_hash = expected_hash
        self.actual_hash = actual_hash


class NodeHashMismatch(ProofError):
    def __init__(self, proof: str, node_index: int, expected_hash: bytes, actual_hash: bytes):
        super().__init__(
            f"{proof} node {node_index}: expected hash 0x{expected_hash.hex()}, "
            f"node hashes to 0x{actual_hash.hex()}"
        )
        self.proof = proof
        self.node_index = node_index
        self.expected_hash = expected_hash
        self.actual_hash = actual_hash


class ProofIncomplete(ProofError):
    def __init__(self, proof: str, nodes: int) -> None:
        super().__init__(f"{proof}: proof ends after {nodes} node(s) before the key's path does")
        self.proof = proof
        self.nodes = nodes


class ProofHasExtraNodes(ProofError):
    def __init__(self, proof: str, used: int, given: int) -> None:
        super().__init__(f"{proof}: path ended after {used} node(s) but {given} were given")
        self.proof = proof
        self.used = used
        self.given = given


class InvalidNode(ProofError):
    def __init__(self, proof: str, node_index: int, detail: str) -> None:
        super().__init__(f"{proof} node {node_index}: {detail}")
        self.proof = proof
        self.node_index = node_index
        self.detail = detail


class ValueMismatch(ProofError):
    def __init__(self, what: str, expected: str, actual: str) -> None:
        super().__init__(f"{what}: claimed {expected}, proven {actual}")
        self.what = what
        self.expected = expected
        self.actual = actual
