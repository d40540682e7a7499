"""Creating the wire topics with one partition count, so tables and streams co-partition."""

from __future__ import annotations

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
