"""Tansu 0.6, the local Kafka-protocol broker, and how xmargin works around it.

Every deviation from Apache Kafka that the project relies on knowing is here:

- **Fetches are held for their whole wait**, even when records arrive meanwhile. With
  Faust's 1.5 s, record to attestation took p50 0.5–0.7 s at 500 records/s; every
  consumer here (Faust's included) therefore waits at most ``FETCH_MAX_WAIT_MS``.
- **ListOffsets(latest) counts record batches**, not records, while a fetch's high
  watermark is true (five single-record sends and one three-record batch: ListOffsets
  6, records at offsets 0–7, high watermark 8). ``fetched_end_offsets`` asks a fetch;
  on Kafka both answers agree and it costs one small fetch per partition.
- **No idempotent producer and no transactions**: InitProducerId is advertised and
  answered with an error, so ``bus.admin.describe`` asks the broker itself; on Tansu
  delivery is at-least-once with the producer's own retries as possible repeats, and
  every consumer dedupes.
- **A group join completes after half the session timeout**: keep it short locally
  (``streams.settings``, ``session_timeout_s``).
- **Memory only**: a broker restart empties the log; the node and its workers notice
  (``bus.epoch``) and halt.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as KafkaTP

FETCH_MAX_WAIT_MS = 100


async def fetched_end_offsets(bootstrap: str, reported: Mapping[Any, int | None],
                              timeout_s: float = 10.0) -> dict[Any, int | None]:
    """The end offset of every partition of ``reported`` (tp → ListOffsets answer) as the
    high watermark of a fetch from just before the reported end."""
    result = dict(reported)
    wanted = {KafkaTP(tp.topic, tp.partition): tp for tp, end in reported.items() if end}
    if not wanted:
        return result
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(wanted))
        for ktp, tp in wanted.items():
            consumer.seek(ktp, int(reported[tp] or 0) - 1)
        deadline = asyncio.get_running_loop().time() + timeout_s
        while any(consumer.highwater(k) is None for k in wanted):
            if asyncio.get_running_loop().time() > deadline:
                break  # keep ListOffsets' answer for the partitions that did not answer
            await consumer.getmany(timeout_ms=200, max_records=1)
        for ktp, tp in wanted.items():
            fetched = consumer.highwater(ktp)
            if fetched is not None:
                result[tp] = max(int(reported[tp] or 0), fetched)
    finally:
        await consumer.stop()
    return result
