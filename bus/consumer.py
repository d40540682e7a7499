"""Consuming records with dead-lettering (aiokafka).

Offsets are committed only after a batch is handled, and every handler is idempotent,
so delivery is at-least-once. A record that fails validation goes to ``<topic>.dlq``
with its raw bytes and reason; the consumer keeps running.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from bus import metrics, tansu
from bus.admin import topic_partitions
from bus.publisher import RecordSink, dead_letter
from wire.records import Record, RecordError, decode

R = TypeVar("R", bound=Record)


async def consume(
    *, bootstrap: str, topic: str, group: str, model: type[R], publisher: RecordSink,
    handle: Callable[[R, ConsumerRecord], Awaitable[None]], stop: asyncio.Event,
    session_timeout_s: float = 6.0, concurrent: bool = False,
) -> None:
    """Feed every valid record of ``topic`` to ``handle``; dead-letter the rest.

    With ``concurrent`` the records of one fetched batch are handled together (for
    handlers whose results do not depend on each other's order).
    """
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
        auto_offset_reset="earliest", session_timeout_ms=int(session_timeout_s * 1000),
        heartbeat_interval_ms=1000, fetch_max_wait_ms=tansu.FETCH_MAX_WAIT_MS,
    )
    await consumer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=500)
            metrics.beat()
            work = []
            for messages in batches.values():
                metrics.RECORDS_CONSUMED.labels(topic=topic).inc(len(messages))
                for message in messages:
                    try:
                        record = decode(model, message.value)
                    except RecordError as e:
                        await dead_letter(publisher, message, e.reason, e.kind)
                        continue
                    if concurrent:
                        work.append(handle(record, message))
                    else:
                        await handle(record, message)
            await asyncio.gather(*work)
            if batches:
                await consumer.commit()
    finally:
        await consumer.stop()


def log_reader(bootstrap: str) -> AIOKafkaConsumer:
    """A consumer (not started) in no group, committing nothing, for partitions it is
    assigned and seeks itself. Its offset reset is "earliest": ``assign`` starts a reset
    to the default strategy, and on Kafka an in-flight "latest" reset landed after a
    ``seek_to_beginning`` and won (aiokafka applies whichever answer comes last), so a
    read from the beginning began at the end."""
    return AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                            enable_auto_commit=False, auto_offset_reset="earliest",
                            fetch_max_wait_ms=tansu.FETCH_MAX_WAIT_MS)


async def read_from_beginning(consumer: AIOKafkaConsumer, bootstrap: str,
                              names: list[str]) -> list[TopicPartition]:
    """Assign ``consumer`` (a ``log_reader``) every partition of the topics ``names``
    and seek each to its beginning; the partitions, in the order of ``names``. They are
    taken as the cluster describes them now: a consumer's first metadata may not hold a
    topic just created (Kafka propagates it), and assigning none fails."""
    known = await topic_partitions(bootstrap, names)
    partitions = [TopicPartition(name, p) for name in names for p in known.get(name, ())]
    consumer.assign(partitions)
    if partitions:
        await consumer.seek_to_beginning(*partitions)
    return partitions


async def tail(*, bootstrap: str, names: list[str],
               handle: Callable[[ConsumerRecord], None], stop: asyncio.Event,
               caught_up: asyncio.Event | None = None) -> None:
    """Feed every record of the topics ``names``, from their beginning, to ``handle``
    until ``stop``: a read model's rebuild, in no consumer group and committing nothing
    (a restart reads the log again). ``caught_up`` is set once every record the topics
    held at the start has been handled."""
    consumer = log_reader(bootstrap)
    await consumer.start()
    try:
        partitions = await read_from_beginning(consumer, bootstrap, names)
        ends = {} if caught_up is None else await tansu.fetched_end_offsets(
            bootstrap, await consumer.end_offsets(partitions))
        while not stop.is_set():
            if caught_up is not None and not caught_up.is_set() and await reached(
                    consumer, ends):
                caught_up.set()
            batches = await consumer.getmany(timeout_ms=500)
            metrics.beat()
            for messages in batches.values():
                for message in messages:
                    handle(message)
    finally:
        await consumer.stop()


async def reached(consumer: AIOKafkaConsumer, ends: Mapping[TopicPartition, int | None]
                  ) -> bool:
    """Has ``consumer``'s position reached ``ends`` (tp → end offset) on every partition?"""
    return all([await consumer.position(tp) >= (end or 0) for tp, end in ends.items()])


async def tail_of(bootstrap: str, topic: str, partitions: set[int], window: int | None,
                  timeout_s: float = 120.0) -> list[bytes]:
    """The values of the last ``window`` records (at most; ``None``: all) of each of
    ``partitions`` of ``topic``, up to the end each had when asked (a fetch's,
    ``tansu``), oldest first per partition."""
    consumer = log_reader(bootstrap)
    await consumer.start()
    try:
        wanted = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(wanted)
        ends = await tansu.fetched_end_offsets(bootstrap, await consumer.end_offsets(wanted))
        todo: dict[TopicPartition, int] = {}
        for tp in wanted:
            end = int(ends.get(tp) or 0)
            if end > 0:
                consumer.seek(tp, 0 if window is None else max(0, end - window))
                todo[tp] = end
        out: list[bytes] = []
        deadline = asyncio.get_running_loop().time() + timeout_s
        while todo:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{topic}: partitions {sorted(tp.partition for tp in todo)} "
                                   f"not read to their end within {timeout_s} s")
            for tp, messages in (await consumer.getmany(*todo, timeout_ms=500)).items():
                out += [m.value for m in messages if m.offset < todo[tp] and m.value]
                if messages and messages[-1].offset >= todo[tp] - 1:
                    del todo[tp]
        return out
    finally:
        await consumer.stop()
