"""Creating the wire topics with one partition count, so tables and streams co-partition."""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from wire import topics


async def ensure_topics(bootstrap: str, partitions: int) -> None:
    """Create every topic and its dead-letter topic that does not exist yet."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [name for t in topics.ALL for name in (t, topics.dead_letter(t))]
        new = [NewTopic(name, partitions, 1) for name in wanted if name not in existing]
        if new:
            await admin.create_topics(new)
    finally:
        await admin.close()


async def topic_partitions(bootstrap: str, names: Iterable[str]) -> dict[str, list[int]]:
    """The partitions of each topic of ``names`` as the broker describes it now (none for
    a topic it does not know). A consumer's own metadata may not hold a topic created
    since it started: Kafka propagates a new topic's metadata after creating it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(list(names))
    finally:
        await admin.close()
    return {t["topic"]: sorted(p["partition"] for p in t["partitions"])
            for t in described if t["error_code"] == 0}
