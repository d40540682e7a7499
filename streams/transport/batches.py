"""Records out in record batches per partition, and ``deliver``: sent until taken.

One producer call per record costs more Python than an attestation is worth; a record
batch per partition costs one call per batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from bus.partitioner import partition_of

log = logging.getLogger(__name__)

# Between two attempts to deliver what the broker refused (``deliver``).
RETRY_S = 5.0


async def send_keyed(producer: AIOKafkaProducer, topic: str,
                     records: Sequence[tuple[bytes, bytes]]) -> list[asyncio.Future[Any]]:
    """Queue ``records`` (key, value) on ``topic``, each on the partition the default
    partitioner gives its key, in as few record batches as fit; their delivery
    futures."""
    count = len(await producer.partitions_for(topic))
    by_partition: dict[int, list[tuple[bytes, bytes | None]]] = {}
    for key, value in records:
        by_partition.setdefault(partition_of(key, count), []).append((key, value))
    return [future for partition, rows in by_partition.items()
            for future, _ in await send_batches(producer, topic, partition, rows)]


async def send_batches(producer: AIOKafkaProducer, topic: str, partition: int,
                       records: Sequence[tuple[bytes, bytes | None]]
                       ) -> list[tuple[asyncio.Future[Any], int]]:
    """Queue ``records`` on one partition in as few record batches as fit; each batch's
    delivery future (its metadata names the first offset) and its size."""
    sent = []
    batch, size = producer.create_batch(), 0
    for key, value in records:
        if batch.append(key=key, value=value, timestamp=None) is None:
            sent.append((await producer.send_batch(batch, topic, partition=partition), size))
            batch, size = producer.create_batch(), 0
            # An empty batch takes any record (one larger than the batch size alone).
            batch.append(key=key, value=value, timestamp=None)
        size += 1
    if size:
        sent.append((await producer.send_batch(batch, topic, partition=partition), size))
    return sent


async def deliver(send: Callable[[], Awaitable[Sequence[asyncio.Future[Any]]]], what: str,
                  retry_s: float = RETRY_S) -> int:
    """``send()`` and wait until the broker has taken every record it queued; when any
    failed (after the producer's own retries: Faust's ``producer_request_timeout``), log
    it and send them all again every ``retry_s``. Returns the failed attempts.

    An agent awaits it before its batch's events are acknowledged, so an outage stalls
    the worker instead of committing past records that never reached the broker, and a
    worker stopped meanwhile works the batch again. A record taken by a failed attempt
    is taken again: a repeat (an attestation's trader and sequence, a state's key and
    value), which consumers, replay and changelog recovery take as one."""
    failed = 0
    while True:
        try:
            await asyncio.gather(*(await send()))
            return failed
        except KafkaError as e:
            failed += 1
            log.error("%s: not delivered (attempt %d: %r); sending again in %.0f s", what,
                      failed, e, retry_s)
            await asyncio.sleep(retry_s)
