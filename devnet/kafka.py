"""Apache Kafka in KRaft mode on 127.0.0.1, from the jars `make kafka` copies out of Maven
Central into ``.tools/kafka/libs`` (``deploy/kafka/pom.xml``, the version of
docker-compose.yml).

``kafka_cluster(net, n)`` formats the storage of ``n`` combined broker + controller
nodes (one cluster id, a quorum of all of them) and starts each as a process of the
``LocalNet``, which stops them with the rest; it returns once every node answers.
"""

from __future__ import annotations

import asyncio
import base64
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from devnet.localnet import REPO, LocalNet, free_port
from relayer.errors import ToolMissing

LIBS = REPO / ".tools" / "kafka" / "libs"
CLASSPATH = f"{LIBS}/*"
HOW_TO_GET = ("run `make kafka` (needs Java 17 and Maven: apt-get install openjdk-17-jdk "
              "maven), which copies the pinned jars into .tools/kafka/libs")


def java_binary() -> str:
    java = shutil.which("java")
    if java is None:
        raise ToolMissing("java", HOW_TO_GET)
    if not LIBS.is_dir() or not any(LIBS.glob("kafka_2.13-*.jar")):
        raise ToolMissing("kafka", HOW_TO_GET)
    return java


@dataclass(frozen=True)
class KafkaNode:
    node_id: int
    port: int
    controller_port: int
    log_dir: Path

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


def properties(node: KafkaNode, voters: str, replication: int) -> str:
    """server.properties of one combined node; ``replication`` for the internal topics."""
    return "\n".join([
        "process.roles=broker,controller",
        f"node.id={node.node_id}",
        f"controller.quorum.voters={voters}",
        f"listeners=PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:"
        f"{node.controller_port}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{node.port}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        f"log.dirs={node.log_dir}",
        f"offsets.topic.replication.factor={replication}",
        f"transaction.state.log.replication.factor={replication}",
        f"transaction.state.log.min.isr={min(replication, 2)}",
        f"default.replication.factor={replication}",
        f"min.insync.replicas={min(replication, 2)}",
        # Tests start groups at once; production keeps Kafka's 3 s.
        "group.initial.rebalance.delay.ms=0",
        # As Tansu does, so tests may produce to a topic before anyone created it; the
        # node and workers create theirs (bus.admin.ensure_topics) with 4 partitions.
        "auto.create.topics.enable=true",
        "num.partitions=4",
    ]) + "\n"


def kafka_cluster(net: LocalNet, n: int = 1, name: str = "kafka") -> list[KafkaNode]:
    """Start ``n`` Kafka nodes as one KRaft cluster; their bootstrap addresses."""
    java = java_binary()
    nodes = [KafkaNode(i + 1, free_port(), free_port(), net.log_dir / f"{name}-{i + 1}-data")
             for i in range(n)]
    voters = ",".join(f"{k.node_id}@127.0.0.1:{k.controller_port}" for k in nodes)
    net.log_dir.mkdir(parents=True, exist_ok=True)
    for node in nodes:
        config_path(net, name, node).write_text(properties(node, voters, min(n, 3)))
    format_and_start(net, java, name, nodes)
    return nodes


def recreate_cluster(net: LocalNet, name: str, nodes: list[KafkaNode]) -> None:
    """The cluster ``kafka_cluster`` started, stopped, its storage wiped and formatted
    with a new cluster id, and started again on the same ports: a Kafka cluster
    recreated, every log empty."""
    java = java_binary()
    for node in nodes:
        net.stop(f"{name}-{node.node_id}")
        shutil.rmtree(node.log_dir, ignore_errors=True)
    format_and_start(net, java, name, nodes)


def format_and_start(net: LocalNet, java: str, name: str, nodes: list[KafkaNode]) -> None:
    cluster_id = new_cluster_id()
    for node in nodes:
        done = subprocess.run([java, "-cp", CLASSPATH, "kafka.tools.StorageTool", "format",
                               "-t", cluster_id, "-c", str(config_path(net, name, node))],
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"kafka-storage format of node {node.node_id} exited "
                               f"{done.returncode}: {done.stderr.strip() or done.stdout.strip()}")
    # A node of several serves once their quorum forms: start them all, then wait.
    for node in nodes:
        start_node(net, java, name, node, wait=len(nodes) == 1)
    for node in nodes:
        wait_serving(node.bootstrap, 90.0, len(nodes))


def new_cluster_id() -> str:
    """A KRaft cluster id as Kafka's ``Uuid.randomUuid`` draws one: 16 random bytes in
    URL-safe base64 without padding, drawn again when it begins with ``-``, which
    ``kafka-storage format -t`` would read as an option."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode()[:22]
        if not cluster_id.startswith("-"):
            return cluster_id


def config_path(net: LocalNet, name: str, node: KafkaNode) -> Path:
    return net.log_dir / f"{name}-{node.node_id}.properties"


def start_node(net: LocalNet, java: str, name: str, node: KafkaNode,
               wait: bool = True) -> None:
    """Start (or restart, on its formatted storage) one node of the cluster; with
    ``wait``, until its port opens."""
    config = config_path(net, name, node)
    net.start(f"{name}-{node.node_id}",
              [java, "-Xms256m", "-Xmx512m", "-XX:+UseSerialGC",
               f"-Dlog4j.configuration=file:{log4j_config(net)}", "-cp", CLASSPATH,
               "kafka.Kafka", str(config)], node.port if wait else None)


def log4j_config(net: LocalNet) -> Path:
    path = net.log_dir / "kafka-log4j.properties"
    if not path.exists():
        path.write_text("log4j.rootLogger=WARN, stdout\n"
                        "log4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
                        "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
                        "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n")
    return path


def wait_serving(bootstrap: str, timeout_s: float, brokers: int = 1) -> None:
    """Until the broker describes its cluster (its port opens before it serves) with at
    least ``brokers`` brokers registered."""
    async def ask() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        await admin.start()
        try:
            found = len((await admin.describe_cluster())["brokers"])
        finally:
            await admin.close()
        if found < brokers:
            raise KafkaError(f"{found} of {brokers} brokers registered")

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            asyncio.run(ask())
            return
        except (KafkaError, OSError) as e:
            if time.monotonic() > deadline:
                raise TimeoutError(f"kafka at {bootstrap} not serving: {e!r}") from e
            time.sleep(0.5)
