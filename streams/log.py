"""The event log as files and back: reading topics from the broker from offset 0, and
the JSON-lines export an auditor can keep and replay with no broker."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams import topics
from streams.replay import LogRecord

AUDITED = (topics.BLOCK_HEADER, topics.POSITION_PROVEN, topics.PRICE, topics.ATTESTATION)
# Within one millisecond, inputs sort before what was derived from them.
RANK = {t: i for i, t in enumerate(AUDITED)}


def in_log_order(records: Iterable[LogRecord]) -> list[LogRecord]:
    return sorted(records, key=lambda r: (r.timestamp_ms, RANK.get(r.topic, 99), r.partition,
                                          r.offset))


async def read_topics(bootstrap: str, names: Iterable[str] = AUDITED,
                      until_ms: int | None = None) -> list[LogRecord]:
    """Every record of ``names`` from offset 0 to the end offsets seen at the start."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(t, p) for t in names
                      for p in sorted(consumer.partitions_for_topic(t) or ())]
        if not partitions:
            await consumer.topics()  # refresh metadata once, then look again
            partitions = [TopicPartition(t, p) for t in names
                          for p in sorted(consumer.partitions_for_topic(t) or ())]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        pending = {tp for tp in partitions if ends[tp] > 0}
        out: list[LogRecord] = []
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=1000)
            for tp, messages in batches.items():
                for m in messages:
                    if m.offset < ends[tp] and (until_ms is None or m.timestamp <= until_ms):
                        out.append(LogRecord(m.topic, m.partition, m.offset, m.timestamp,
                                             m.key, m.value))
                    if m.offset >= ends[tp] - 1:
                        pending.discard(tp)
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
