"""A three-broker Kafka cluster (replication 3, min.insync.replicas 2, acks=all) loses
one broker to SIGKILL while books, prices and attestations flow, and gets it back
later. Nothing is lost or doubled: every trade and price is attested, each trader's
sequence runs on without a gap, a repeated sequence is the same attestation, the node
and its worker ride through without a restart, and the replay report is the same read
through the restarted broker as through the others."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from bus.admin import describe, ensure_topics
from devnet.deploy import anvil_account
from devnet.hedge import (
    open_positions,
    set_price,
    setup_network,
    start_attesters,
    trade,
    wait_for_attestation,
    wait_for_netted_attestation,
    wait_for_oracles,
)
from devnet.kafka import java_binary, kafka_cluster, start_node, wait_serving
from devnet.localnet import LocalNet
from relayer.errors import ToolMissing
from streams.audit_log import read_topics
from tests.conftest import BROKERS
from tests.integration.test_end_to_end import scrape, value
from tests.support.tools import missing
from wire import topics
from wire.records import Attestation

pytestmark = pytest.mark.integration
TRADERS = (3, 4, 5)


async def group_coordinator(bootstrap: str, group: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return await admin.find_coordinator(group)
    finally:
        await admin.close()


def replay(config: Path) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-m", "xmargin.cli", "replay", "--config",
                           str(config), "--from-beginning", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.skipif("kafka" not in BROKERS, reason="Kafka only (XMARGIN_TEST_BROKERS)")
def test_a_broker_killed_mid_flow_loses_and_doubles_nothing(localnet: LocalNet,
                                                            tmp_path: Path) -> None:
    try:
        java = java_binary()
        nodes = kafka_cluster(localnet, 3, name="kraft")
    except ToolMissing as e:
        missing(f"three-broker Kafka: {e}")
    bootstrap = ",".join(n.bootstrap for n in nodes)
    cluster = asyncio.run(describe(bootstrap))
    assert cluster.brokers == 3 and cluster.replication == 3 and cluster.idempotent
    chains = [localnet.chain(41001), localnet.chain(41002)]
    network = setup_network(tmp_path, bootstrap, chains, prices={"ETH": 3000})
    asyncio.run(ensure_topics(bootstrap, 4))
    start_attesters(localnet, network)
    node = localnet.start("node", [sys.executable, "-m", "xmargin.cli", "node", "run",
                                   "--config", str(network.config_path)])
    chain_a, chain_b = network.deployments
    traders = [anvil_account(i) for i in TRADERS]
    for t in traders:
        opened = open_positions(chain_a, t, "ETH", collateral_usd=10_000, size=1.0)
        asyncio.run(wait_for_netted_attestation(bootstrap, t.address.lower(),
                                                {chain_a.chain_id: opened}, 180.0))

    # One broker gone, no goodbye; the flow goes on through the other two. The victim is
    # not the workers' group coordinator: no rebalance resets the worker's fetches, which
    # have to follow the partitions' new leaders by themselves.
    coordinator = asyncio.run(group_coordinator(bootstrap, "xmargin"))
    victim = next(n for n in nodes if n.node_id != coordinator)
    name = f"kraft-{victim.node_id}"
    [(_, proc)] = [(n, p) for n, p in localnet.processes if n == name]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    localnet.processes = [(n, p) for n, p in localnet.processes if n != name]
    during = {t.address: trade(chain_b, t, "ETH", -0.25) for t in traders}
    # Every chain's feed is a source of the one ETH price: moved on one alone, the
    # sources disagree, the price is degraded, and the hedges (healthier) are held back.
    for chain in (chain_a, chain_b):
        set_price(chain, "ETH", 2900)
    for t in traders:
        asyncio.run(wait_for_netted_attestation(bootstrap, t.address.lower(),
                                                {chain_b.chain_id: during[t.address]}, 180.0))
    asyncio.run(wait_for_attestation(
        bootstrap, lambda a: any(p.asset == "ETH" and p.price_wad < 3000 * 10**18
                                 for p in a.prices), 180.0, "after the price move"))
    time.sleep(5)
    start_node(localnet, java, "kraft", victim)  # back on its own storage
    wait_serving(victim.bootstrap, 90.0)
    after = {t.address: trade(chain_a, t, "ETH", 0.5) for t in traders}
    finals = [asyncio.run(wait_for_netted_attestation(
        bootstrap, t.address.lower(), {chain_a.chain_id: after[t.address]}, 180.0))
        for t in traders]
    for t, final in zip(traders, finals, strict=True):
        wait_for_oracles(network.deployments, t.address, final.sequence, 120.0)

    # Rode through: the node never exited, no task (the worker among them) restarted.
    assert node.poll() is None
    for port in (network.metrics_port, network.worker_metrics_port):
        samples = scrape(port)
        restarts = {dict(ls)["task"]: v for (n, ls), v in samples.items()
                    if n == "xmargin_task_restarts_total"}
        assert restarts and not any(restarts.values()), restarts
        assert value(samples, "xmargin_log_vanished") == 0

    # Nothing lost, nothing doubled beyond the documented repeat (the same attestation).
    # A repeat is the same attestation: the same books and figures (a batch worked again
    # after a rebalance may be attested at another time).
    seen: dict[tuple[str, int], dict[str, object]] = {}
    for record in asyncio.run(read_topics(bootstrap, [topics.ATTESTATION])):
        a = Attestation.model_validate_json(record.value)
        key, body = (a.trader, a.sequence), a.model_dump(exclude={"issued_at", "valid_until"})
        assert seen.setdefault(key, body) == body, f"{key} attested twice, differently"
    for t, final in zip(traders, finals, strict=True):
        held = sorted(s for trader, s in seen if trader == t.address.lower())
        assert held == list(range(1, final.sequence + 1)), (t.address, held)

    # The replay report read through every broker, then with another broker down (the
    # restarted one now serves what it caught up on): the same, and clean.
    localnet.stop("node")  # its listeners publish headers as long as it runs
    report = replay(network.config_path)
    assert report["ok"] and report["matched"] == report["attestations"], report
    localnet.stop(next(f"kraft-{n.node_id}" for n in nodes if n is not victim))
    assert replay(network.config_path) == report
