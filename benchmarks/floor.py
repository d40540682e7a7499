"""What one Python process cannot avoid doing per record: the ceiling a target must fit.

``bench_streams`` measures, on its own log and in the same run, the C-level steps that
each record needs whatever the design, with none of the work around them: no pydantic,
no reducers, no margining, no Faust. A worker at the ceiling would spend all its time
in these steps; the real one also decides, computes and hands records between them.

- worker, per proven book: read it (aiokafka, at the rate ``raw_consume`` measured),
  parse its JSON (json.loads), write one state (one RocksDB put of the parsed book
  re-serialised without proofs, json.dumps) and hash one attestation (its struct hash
  and two chains' digests: three keccaks) and serialise it (json.dumps);
- replay, per proven book: parse it, hex-decode and hash every storage-proof node (the
  account proof is shared by a block's books) and hash its commitment; per
  attestation: parse it and hash it again (three keccaks).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from pydantic import BaseModel
from rocksdict import Options, Rdict, WriteOptions

from proofs.keccak import keccak
from wire import topics

WORDS = 9 * 32  # an attestation's struct: its type hash and nine words


def digests() -> None:
    """An attestation's struct hash and its two chains' EIP-712 digests."""
    struct_hash = keccak(b"\x01" * (WORDS + 32))
    for _ in range(2):
        keccak(b"\x19\x01" + b"\x02" * 32 + struct_hash)


def worker_us_per_record(values: Sequence[bytes]) -> float:
    """µs per proven book of parse, one state put, one attestation (hashes and JSON)."""
    with tempfile.TemporaryDirectory() as tmp:
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        db = Rdict(str(Path(tmp) / "floor"), options=options)
        unlogged = WriteOptions()  # as the worker's table stores (streams.transport.table)
        unlogged.disable_wal = True  # type: ignore[method-assign,assignment]  # a property
        db.set_write_options(unlogged)
        try:
            start = time.perf_counter()
            for value in values:
                book = json.loads(value)
                state = {k: v for k, v in book.items() if not k.endswith("proof")}
                db.put(book["trader"].encode(), json.dumps(state, separators=(",", ":")
                                                           ).encode())
                digests()
                json.dumps({"trader": book["trader"], "sequence": 1,
                            "book_events": [book["event_id"]],
                            "equity_wad": book["collateral_wad"]}).encode()
            elapsed = time.perf_counter() - start
        finally:
            db.close()
    return elapsed / len(values) * 1e6


def replay_us_per_record(records: Iterable[tuple[str, bytes]]) -> tuple[float, int]:
    """µs per record (topic, value) of what an audit cannot skip; and how many."""
    start = time.perf_counter()
    n = 0
    for topic, value in records:
        parsed = json.loads(value)
        if topic == topics.POSITION_PROVEN:
            for node in parsed["storage_proof"]:
                keccak(bytes.fromhex(node[2:]))
            keccak(b"\x00" * 32 * (4 + 3 * len(parsed["positions"])))
        elif topic == topics.ATTESTATION:
            digests()
        elif topic == topics.BLOCK_HEADER:
            keccak(bytes.fromhex(parsed["header_rlp"][2:]))
        n += 1
    return (time.perf_counter() - start) / max(n, 1) * 1e6, n


def schema_us_per_record(values: Sequence[bytes], model: type[BaseModel]) -> float:
    """µs per record that validating against the record schema (pydantic, as the issue
    asks of every record read) adds to parsing the JSON alone."""
    def timed(parse: Callable[[bytes], object]) -> float:
        start = time.perf_counter()
        for value in values:
            parse(value)
        return time.perf_counter() - start

    # Each twice, keeping the faster: the first pass over the log pays for bringing it
    # into the caches.
    parsed = min(timed(json.loads), timed(json.loads))
    validated = min(timed(model.model_validate_json), timed(model.model_validate_json))
    return (validated - parsed) / len(values) * 1e6
