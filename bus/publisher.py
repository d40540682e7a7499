"""Publishing records and dead letters (aiokafka), behind the narrow ``RecordSink``.

Delivery is at-least-once: a record is published once the broker has it
(``acks="all"``: on a replicated Kafka, once ``min.insync.replicas`` brokers hold it),
and every consumer is idempotent. On Kafka the producer is idempotent too: a batch it
retries after a lost acknowledgement (a broker killed mid-request) is written once, so
the log's only repeats are the application's own (a process that died between a send
and its commit sends again), which consumers take as one.
"""

from __future__ import annotations

import logging
from typing import Protocol

from aiokafka import AIOKafkaProducer, ConsumerRecord

from bus import metrics
from bus.admin import describe
from wire import topics
from wire.records import DeadLetter, Record

log = logging.getLogger(__name__)


class RecordSink(Protocol):
    """Where the relayer's services put records: the bus, or a list in a unit test."""

    async def publish(self, topic: str, key: str, record: Record) -> None: ...

    async def refuse(self, topic: str, key: bytes | None, value: bytes | None, reason: str,
                     partition: int | None = None, offset: int | None = None,
                     kind: str = "schema") -> None:
        """Dead-letter a record refused for ``topic``; ``kind`` is the metrics label
        (``bus.metrics.DEAD_LETTER_KINDS``)."""
        ...


class Publisher:
    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._producer: AIOKafkaProducer | None = None

    @property
    def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("the publisher is not started")
        return self._producer

    async def start(self) -> None:
        """Start the producer: idempotent where the broker grants producer ids (Kafka),
        so a send retried after a lost acknowledgement is written once."""
        cluster = await describe(self.bootstrap)
        self._producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all",
                                          enable_idempotence=cluster.idempotent, linger_ms=2)
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    async def publish(self, topic: str, key: str, record: Record) -> None:
        await self.producer.send_and_wait(topic, key=key.encode(), value=record.to_bytes())

    async def refuse(self, topic: str, key: bytes | None, value: bytes | None, reason: str,
                     partition: int | None = None, offset: int | None = None,
                     kind: str = "schema") -> None:
        """Send the raw bytes of a record refused for ``topic`` to its dead-letter topic."""
        letter = DeadLetter.refused(topic, key, value, reason, partition, offset)
        log.warning("record dead-lettered", extra={"topic": topic, "reason": reason,
                                                   "kind": kind})
        metrics.DEAD_LETTERS.labels(topic=topic, reason=kind).inc()
        await self.producer.send_and_wait(topics.dead_letter(topic), key=key,
                                          value=letter.to_bytes())


async def dead_letter(sink: RecordSink, message: ConsumerRecord, reason: str,
                      kind: str) -> None:
    """Dead-letter a consumed ``message`` with where it was read."""
    await sink.refuse(message.topic, message.key, message.value, reason,
                      partition=message.partition, offset=message.offset, kind=kind)
