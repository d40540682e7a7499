"""Merkle-Patricia trie proof verification (Yellow Paper appendix D; EIP-1186).

A proof is the list of RLP-encoded nodes on the path from the root to the key. Each
node must hash to the reference that points at it; nodes whose encoding is shorter
than 32 bytes are embedded in their parent instead of referenced by hash. The walk
either reaches the key's leaf (inclusion) or reaches a point where the path provably
diverges (exclusion: the key is absent and its value is empty).
"""

from __future__ import annotations

from collections.abc import Sequence

import rlp

from proofs.errors import (
    InvalidNode,
    MalformedInput,
    NodeHashMismatch,
    ProofHasExtraNodes,
    ProofIncomplete,
)
from proofs.keccak import keccak
from proofs.rlpnode import RLPError, decode_node

BLANK_ROOT = keccak(rlp.encode(b""))

Node = list  # a decoded node: 17 items (branch) or 2 items (extension / leaf)


# Paths are kept as lowercase hex strings, one character per nibble: slicing and
# comparing them runs in C, which matters on the verification hot path.
NIBBLE = {c: i for i, c in enumerate("0123456789abcdef")}


def decode_compact(encoded: bytes) -> tuple[str, bool]:
    """Hex-prefix decoding (Yellow Paper appendix C): the nibble path (as hex) and the
    leaf flag."""
    if not encoded:
        raise ValueError("empty hex-prefix path")
    nibbles = encoded.hex()
    flag = NIBBLE[nibbles[0]]
    if flag > 3 or (flag in (0, 2) and nibbles[1] != "0"):
        raise ValueError(f"bad hex-prefix flag nibble {flag}")
    return (nibbles[1:] if flag & 1 else nibbles[2:]), flag >= 2


class NodeCache:
    """Distinct proof nodes, hashed and decoded once.

    Proofs at one block share their upper nodes (every storage proof of an account
    starts at the same root, every slot of a venue shares its account proof); a cache
    shared by a batch turns those repeats into dictionary look-ups.
    """

    __slots__ = ("_nodes",)

    def __init__(self) -> None:
        self._nodes: dict[bytes, tuple[bytes, Node | None]] = {}

    def __len__(self) -> int:
        return len(self._nodes)

    def hash_of(self, encoded: bytes) -> bytes:
        hit = self._nodes.get(encoded)
        if hit is None:
            hit = (keccak(encoded), None)
            self._nodes[encoded] = hit
        return hit[0]

    def decoded(self, encoded: bytes, label: str, index: int) -> Node:
        node_hash, node = self._nodes[encoded]
        if node is None:
            try:
                node = decode_node(encoded)
            except RLPError as e:
                raise MalformedInput(f"{label} node {index}", str(e)) from e
            self._nodes[encoded] = (node_hash, node)
        return node


def verify_proof(
    root: bytes, key: bytes, proof: Sequence[bytes], label: str = "proof", *, secure: bool = True,
    cache: NodeCache | None = None,
) -> bytes | None:
    """The value stored at ``key`` in the trie rooted at ``root``.

    State and storage tries are *secure*: the path is ``keccak(key)``; pass
    ``secure=False`` for a plain trie (transactions, receipts, the TrieTests vectors).
    Returns ``None`` when the proof shows the key is absent. Raises a ``ProofError``
    subclass when the proof does not prove either outcome against ``root``. Pass one
    ``cache`` to many calls to hash and decode shared nodes once.
    """
    cache = cache if cache is not None else NodeCache()
    if root == BLANK_ROOT and all(node == b"\x80" for node in proof):
        return None
    path = (keccak(key) if secure else key).hex()
    reference: bytes | Node = root
    used = 0
    pos = 0
    while True:
        node, used = _resolve(reference, proof, used, label, cache)
        if len(node) == 17:
            if pos == len(path):
                value = node[16]
                break
            reference = node[NIBBLE[path[pos]]]
            pos += 1
            if reference == b"":
                value = None
                break
        elif len(node) == 2:
            try:
                segment, is_leaf = decode_compact(node[0])
            except ValueError as e:
                raise InvalidNode(label, used - 1, str(e)) from e
            if path[pos : pos + len(segment)] != segment:
                value = None
                break
            pos += len(segment)
            if is_leaf:
                if pos != len(path):
                    raise InvalidNode(label, used - 1, "leaf ends before the key does")
                value = node[1]
                break
            reference = node[1]
        else:
            raise InvalidNode(label, used - 1, f"node has {len(node)} items, not 2 or 17")
    if used != len(proof):
        raise ProofHasExtraNodes(label, used, len(proof))
    if value is not None and not isinstance(value, bytes):
        raise InvalidNode(label, used - 1, "value is not a byte string")
    return value or None


def _resolve(
    reference: bytes | Node, proof: Sequence[bytes], used: int, label: str, cache: NodeCache
) -> tuple[Node, int]:
    """The node a reference points at, and how many proof nodes are consumed now."""
    if isinstance(reference, list):
        # An embedded node is already authenticated inside its parent's RLP. geth's
        # eth_getProof omits it; py-trie lists it again: accept an identical copy.
        if used < len(proof) and proof[used] == rlp.encode(reference):
            used += 1
        return reference, used
    if len(reference) != 32:
        raise InvalidNode(label, max(used - 1, 0), f"child reference of {len(reference)} bytes")
    if used >= len(proof):
        raise ProofIncomplete(label, used)
    encoded = proof[used]
    actual = cache.hash_of(encoded)
    if actual != reference:
        raise NodeHashMismatch(label, used, reference, actual)
    return cache.decoded(encoded, label, used), used + 1
