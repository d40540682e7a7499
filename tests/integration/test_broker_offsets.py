"""The end offset Faust recovers a changelog to, on the real local broker."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bus.tansu import fetched_end_offsets

pytestmark = pytest.mark.integration


async def _written(broker: str, topic: str) -> tuple[int, int | None]:
    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 1, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=broker, linger_ms=50)
    await producer.start()
    for _ in range(5):
        await (await producer.send(topic, value=b"single"))
    # Three sends inside one linger window travel as one three-record batch.
    await asyncio.gather(*[await producer.send(topic, value=b"batched") for _ in range(3)])
    await producer.stop()
    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=broker, group_id=None)
    await consumer.start()
    listed = (await consumer.end_offsets([tp]))[tp]
    await consumer.stop()
    fetched = (await fetched_end_offsets(broker, {tp: listed}))[tp]
    return listed, fetched


def test_the_end_offset_counts_records_not_batches(broker: str) -> None:
    listed, fetched = asyncio.run(_written(broker, "offsets-probe"))
    assert fetched == 8  # eight records at offsets 0–7, whatever ListOffsets says
    assert listed <= fetched  # Tansu 0.6 lists 6 (one per batch); Kafka lists 8
