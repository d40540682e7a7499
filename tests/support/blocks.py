"""London-layout block headers for logs built in tests and benchmarks: real RLP whose
keccak is the block hash, so that an audit recomputes and anchors them."""

from __future__ import annotations

import rlp

from proofs.keccak import keccak
from wire.records import BlockHeaderRecord

EMPTY_LIST_HASH = keccak(rlp.encode([]))
EMPTY_TRIE = keccak(rlp.encode(b""))


def header_record(chain_id: int, number: int, parent_hash: bytes, state_root: bytes,
                  timestamp: int) -> BlockHeaderRecord:
    """The ``chain.block_header.v1`` record of a header with these fields (the rest
    empty, as a block without transactions has them)."""
    fields = [parent_hash, EMPTY_LIST_HASH, b"\x00" * 20, state_root, EMPTY_TRIE, EMPTY_TRIE,
              b"\x00" * 256, 0, number, 30_000_000, 0, timestamp, b"", b"\x00" * 32,
              b"\x00" * 8, 7]
    encoded = rlp.encode(fields)
    return BlockHeaderRecord(
        chain_id=chain_id, number=number, hash="0x" + keccak(encoded).hex(),
        parent_hash="0x" + parent_hash.hex(), state_root="0x" + state_root.hex(),
        timestamp=timestamp, header_rlp="0x" + encoded.hex())
