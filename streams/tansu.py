"""Faust on Tansu 0.6: a partition's end offset from a fetch, not from ListOffsets.

Tansu 0.6 answers ListOffsets(latest) with the number of record *batches* in a partition,
while its fetch responses carry the true high watermark (measured: five single-record
sends and one three-record batch → ListOffsets 6, records at offsets 0–7, fetch high
watermark 8). Faust reads a table's changelog up to ListOffsets' answer when it
recovers a partition, so with multi-record batches it would stop early and lose state
(or fail its consistency check). This transport asks a fetch instead; on Kafka the two
answers agree and it only costs one small fetch per changelog partition at recovery.

It also hands the agents' topics (``BUNDLED``) to Faust in bundles (``streams.bundles``):
each partition's run of records from one fetch becomes one message. And it lets more
table writes wait for the producer (``PRODUCER_BUFFER_MESSAGES``) before Faust holds
its streams back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as KafkaTP
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from faust.transport import drivers
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from streams import bundles, topics

log = logging.getLogger(__name__)

SCHEME = "tansu"
# The topics the stream processor's agents read; never a table's changelog, which Faust
# reads record by record when it recovers a partition.
BUNDLED = frozenset({topics.POSITION_PROVEN, topics.PRICE, topics.REORG, topics.RECOMPUTE})
# Table writes queue in Faust's producer buffer; past its bound (Faust's is 100) every
# incoming message first waits for the buffer to drain, waiting on each send with a 0.1 s
# timeout. A bundle of ~100 books writes ~100 states, so the agents stalled often: p50
# record-to-attestation at 500 records/s was 190-250 ms with bundles, 106-128 ms with
# this bound (benchmarks/bench_streams.py cut to 10,000 traders; 108 ms at 50,000). The
# bound still holds memory: ~2 KB per state.
PRODUCER_BUFFER_MESSAGES = 20_000
# Between two attempts to deliver what the broker refused (``deliver``).
RETRY_S = 5.0


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


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # Faust fixes it at 1.5 s; see topics.FETCH_MAX_WAIT_MS. Read when it starts.
        consumer._fetch_max_wait_ms = topics.FETCH_MAX_WAIT_MS
        return consumer

    async def _highwaters(self, partitions: Iterable[TP]) -> Mapping[TP, int]:
        reported = await super()._highwaters(list(partitions))
        if self.consumer.in_transaction:
            return reported
        bootstrap = ",".join(f"{u.host}:{u.port or 9092}" for u in self.app.conf.broker)
        return await fetched_end_offsets(bootstrap, reported)  # type: ignore[return-value]


def bundle(records: list[Any]) -> Any:
    """One record standing for ``records`` (one partition's, in offset order): at the last
    one's offset, so that acknowledging it commits them all."""
    last = records[-1]
    value = bundles.Bundle.of([bundles.Entry(r.offset, r.timestamp, r.key, r.value)
                               for r in records])
    return ConsumerRecord(
        topic=last.topic, partition=last.partition, offset=last.offset,
        timestamp=last.timestamp, timestamp_type=last.timestamp_type, key=None, value=value,
        checksum=None, serialized_key_size=-1, serialized_value_size=len(value),
        headers=((bundles.HEADER, str(len(records)).encode()),))


class Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _getmany(self, active_partitions: Any, timeout: float) -> Any:
        fetched = await super()._getmany(active_partitions, timeout)
        return {tp: [bundle(records)] if tp.topic in BUNDLED and records else records
                for tp, records in fetched.items()}


class Producer(faust_aiokafka.Producer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.buffer.max_messages = PRODUCER_BUFFER_MESSAGES

    async def send_keyed(self, topic: str, records: Sequence[tuple[bytes, bytes]]
                         ) -> list[asyncio.Future[Any]]:
        """Queue ``records`` (key, value) on ``topic``, each on the partition the default
        partitioner gives its key, in as few record batches as fit; their delivery
        futures. Sending them one by one cost ~15 µs of Python each
        (benchmarks/bench_streams.py: one attestation per proven book)."""
        count = len(await self._ensure_producer().partitions_for(topic))
        by_partition: dict[int, list[tuple[bytes, bytes | None]]] = {}
        for key, value in records:
            by_partition.setdefault(topics.partition_of(key, count), []).append((key, value))
        return [future for partition, rows in by_partition.items()
                for future, _ in await self.send_batches(topic, partition, rows)]

    async def send_batches(self, topic: str, partition: int,
                           records: Sequence[tuple[bytes, bytes | None]]
                           ) -> list[tuple[asyncio.Future[Any], int]]:
        """Queue ``records`` on one partition in as few record batches as fit; each
        batch's delivery future (its metadata names the first offset) and its size."""
        producer = self._ensure_producer()
        sent = []
        batch, size = producer.create_batch(), 0
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None) is None:
                sent.append((await producer.send_batch(batch, topic, partition=partition),
                             size))
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


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer
    Producer = Producer


def register() -> None:
    """Make ``tansu://host:port`` broker URLs use this transport."""
    drivers.TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"
