"""The event log as files and back: reading topics from the broker from offset 0, and
the JSON-lines export an auditor can keep and replay with no broker."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path

from bus.consumer import log_reader, read_from_beginning
from streams.audit_report import LogRecord
from wire import topics

AUDITED = (topics.BLOCK_HEADER, topics.REORG, topics.PRICE, topics.VOL, topics.POSITION_PROVEN,
           topics.ATTESTATION)
# Within one millisecond, inputs sort before what was derived from them.
RANK = {t: i for i, t in enumerate(AUDITED)}


def in_log_order(records: Iterable[LogRecord]) -> list[LogRecord]:
    return sorted(records, key=lambda r: (r.timestamp_ms, RANK.get(r.topic, 99), r.partition,
                                          r.offset))


async def read_topics(bootstrap: str, names: Iterable[str] = AUDITED,
                      until_ms: int | None = None) -> list[LogRecord]:
    """Every record of ``names`` from offset 0 to the end offsets seen at the start."""
    names = list(names)
    consumer = log_reader(bootstrap)
    await consumer.start()
    try:
        partitions = await read_from_beginning(consumer, bootstrap, names)
        ends = await consumer.end_offsets(partitions)
        out: list[LogRecord] = []
        # The log as it stood when the replay started. Read past the reported end offsets
        # (Tansu reports high watermarks per batch, not per record) until each partition
        # shows a later record or goes quiet.
        cutoff_ms = int(time.time() * 1000)
        if until_ms is not None:
            cutoff_ms = min(cutoff_ms, until_ms)
        open_partitions = set(partitions)
        while open_partitions:
            batches = await consumer.getmany(*open_partitions, timeout_ms=1000)
            if not batches:
                break
            for tp, messages in batches.items():
                for m in messages:
                    if m.timestamp > cutoff_ms:
                        if m.offset >= ends[tp] - 1:
                            open_partitions.discard(tp)
                        continue
                    out.append(LogRecord(m.topic, m.partition, m.offset, m.timestamp,
                                         m.key, m.value))
        return in_log_order(out)
    finally:
        await consumer.stop()


def export(records: Iterable[LogRecord], directory: Path) -> dict[str, int]:
    """One ``<topic>.jsonl`` per topic; returns the record count per topic."""
    directory.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    files = {}
    try:
        for r in records:
            if r.topic not in files:
                files[r.topic] = (directory / f"{r.topic}.jsonl").open("w")
            files[r.topic].write(json.dumps({
                "partition": r.partition, "offset": r.offset, "timestamp_ms": r.timestamp_ms,
                "key_hex": r.key.hex() if r.key is not None else None,
                "value_hex": r.value.hex() if r.value is not None else None,
            }) + "\n")
            counts[r.topic] = counts.get(r.topic, 0) + 1
    finally:
        for f in files.values():
            f.close()
    return counts


def load(directory: Path) -> list[LogRecord]:
    records = []
    for path in sorted(directory.glob("*.jsonl")):
        topic = path.name.removesuffix(".jsonl")
        for line in path.read_text().splitlines():
            d = json.loads(line)
            records.append(LogRecord(
                topic, d["partition"], d["offset"], d["timestamp_ms"],
                bytes.fromhex(d["key_hex"]) if d["key_hex"] is not None else None,
                bytes.fromhex(d["value_hex"]) if d["value_hex"] is not None else None))
    return in_log_order(records)
