"""Publishing records and consuming them with dead-lettering (aiokafka).

Delivery is at-least-once: offsets are committed only after a batch is handled, and
every handler is idempotent. A record that fails validation goes to
``<topic>.dlq`` with its raw bytes and reason; the consumer keeps running.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord

from streams import topics
from streams.records import DeadLetter, Record, RecordError, decode

log = logging.getLogger(__name__)
R = TypeVar("R", bound=Record)


class Publisher:
    def __init__(self, bootstrap: str) -> None:
        # Tansu has no idempotent producer; duplicates are handled by consumers.
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                         enable_idempotence=False, linger_ms=2)

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()

    async def publish(self, topic: str, key: str, record: Record) -> None:
        await self.producer.send_and_wait(topic, key=key.encode(), value=record.to_bytes())

    async def dead_letter(self, message: ConsumerRecord, reason: str) -> None:
        await self.refuse(message.topic, message.key, message.value, reason,
                          partition=message.partition, offset=message.offset)

    async def refuse(self, topic: str, key: bytes | None, value: bytes | None, reason: str,
                     partition: int | None = None, offset: int | None = None) -> None:
        """Send the raw bytes of a record refused for ``topic`` to its dead-letter topic."""
        letter = DeadLetter.refused(topic, key, value, reason, partition, offset)
        log.warning("record dead-lettered", extra={"topic": topic, "reason": reason})
        await self.producer.send_and_wait(topics.dead_letter(topic), key=key,
                                          value=letter.to_bytes())


async def consume(
    *, bootstrap: str, topic: str, group: str, model: type[R], publisher: Publisher,
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
        heartbeat_interval_ms=1000,
        fetch_max_wait_ms=topics.FETCH_MAX_WAIT_MS,
    )
    await consumer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=500)
            work = []
            for messages in batches.values():
                for message in messages:
                    try:
                        record = decode(model, message.value)
                    except RecordError as e:
                        await publisher.dead_letter(message, e.reason)
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
