"""Creating the wire topics with one partition count, so tables and streams co-partition,
and what the cluster offers: how many brokers (the replication factor) and whether it
grants producer ids (the idempotent producer)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError
from aiokafka.protocol.metadata import MetadataRequest

from wire import topics

# Replicas of every topic, fewer only on a smaller cluster; with the brokers'
# min.insync.replicas=2 and acks=all a record is acknowledged once two brokers hold it.
REPLICATION = 3


@dataclass(frozen=True)
class Cluster:
    brokers: int
    idempotent: bool  # grants producer ids: Apache Kafka does, Tansu 0.6 does not

    @property
    def replication(self) -> int:
        return replication(self.brokers)


def replication(brokers: int) -> int:
    """The replicas of every topic on a cluster of ``brokers``."""
    return min(REPLICATION, brokers)


# One broker that grants no producer ids: Tansu, and what tests assume of a fake cluster.
SINGLE = Cluster(brokers=1, idempotent=False)


async def describe(bootstrap: str) -> Cluster:
    """The cluster behind ``bootstrap``. Idempotence is asked of the broker itself (an
    idempotent producer's InitProducerId): Tansu advertises the request in ApiVersions
    and then answers it with an error."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        brokers = len((await admin.describe_cluster())["brokers"])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    try:
        await producer.start()
        idempotent = True
    except KafkaError:
        idempotent = False
    finally:
        await producer.stop()
    return Cluster(brokers=brokers, idempotent=idempotent)


async def ensure_topics(bootstrap: str, partitions: int) -> None:
    """Create every topic and its dead-letter topic that does not exist yet, each with
    ``REPLICATION`` replicas (as many as there are brokers, when fewer)."""
    await create_missing(bootstrap, [
        (name, partitions, {}) for t in topics.ALL for name in (t, topics.dead_letter(t))])


async def create_missing(bootstrap: str,
                         wanted: Iterable[tuple[str, int, dict[str, str]]]) -> None:
    """Create each topic of ``wanted`` (name, partitions, topic configs) that does not
    exist yet, replicated as every topic is (``replication``)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        brokers = len((await admin.describe_cluster())["brokers"])
        existing = set(await admin.list_topics())
        new = [NewTopic(name, count, replication(brokers), topic_configs=configs)
               for name, count, configs in wanted if name not in existing]
        if new:
            await admin.create_topics(new)
    finally:
        await admin.close()


async def wait_known(bootstrap: str, names: Iterable[str], timeout_s: float = 30.0) -> None:
    """Return once every broker's metadata holds every topic of ``names``. Kafka
    propagates a new topic to its brokers after creating it, and a client whose first
    metadata comes from a broker not yet told sees no such topic: a consumer group
    assigned then has none of its partitions (Faust's assignor ignores the topic)."""
    wanted = sorted(set(names))
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        request = MetadataRequest(wanted, allow_auto_topic_creation=False)
        for broker in client.cluster.brokers():
            while True:
                response = await client.send(broker.nodeId, request)
                known = {t[1] for t in response.topics if t[0] == 0 and t[-1]}  # partitions
                if known >= set(wanted):
                    break
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"broker {broker.nodeId} does not know topics "
                                       f"{sorted(set(wanted) - known)} after {timeout_s} s")
                await asyncio.sleep(0.1)
    finally:
        await client.close()


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
