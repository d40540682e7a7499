"""A log that vanishes: the broker restarted empty under a running node and its worker
(Tansu restarted, a Kafka cluster recreated with a new cluster id). Both
find the log no longer holds the epoch they built on and halt, with an incident file and
``xmargin_log_vanished`` at 1, instead of carrying on over an empty log; a node started
again over it refuses to start (exit 3). The operator restores the last export
(``xmargin log restore``) and the node carries on: the trader's next attestation follows
the last one every MarginOracle holds, and the restored log audits clean."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bus import epoch
from bus.admin import ensure_topics
from devnet.deploy import anvil_account
from devnet.hedge import (
    open_positions,
    read_oracle,
    setup_network,
    start_attesters,
    trade,
    wait_for_netted_attestation,
    wait_for_oracles,
)
from devnet.kafka import kafka_cluster, recreate_cluster
from devnet.localnet import LocalNet
from relayer.errors import ToolMissing
from tests.conftest import BROKERS
from tests.integration.test_end_to_end import scrape, value
from tests.support.tools import missing

pytestmark = pytest.mark.integration


def wait_for(what: str, found: object, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found():  # type: ignore[operator]
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} not within {timeout_s} s")


@pytest.fixture(params=BROKERS)
def emptiable(request: pytest.FixtureRequest,
              localnet: LocalNet) -> tuple[str, Callable[[], None]]:
    """This test's own broker (it is emptied below) and how to empty it at the same
    address: Tansu restarted (it keeps nothing), or a Kafka cluster recreated."""
    if request.param == "tansu":
        bootstrap = localnet.broker()
        port = int(bootstrap.rsplit(":", 1)[1])

        def restart() -> None:
            localnet.stop("tansu")
            localnet.broker(port)
        return bootstrap, restart
    try:
        nodes = kafka_cluster(localnet, 1, name="kafka-vanishing")
    except ToolMissing as e:
        missing(f"Kafka half: {e}")
    return nodes[0].bootstrap, lambda: recreate_cluster(localnet, "kafka-vanishing", nodes)


def test_a_broker_restarted_empty_halts_the_node_and_its_worker(
        localnet: LocalNet, tmp_path: Path,
        emptiable: tuple[str, Callable[[], None]]) -> None:
    bootstrap, empty_the_broker = emptiable
    chains = [localnet.chain(41001), localnet.chain(41002)]
    network = setup_network(tmp_path, bootstrap, chains, prices={"ETH": 3000})
    asyncio.run(ensure_topics(bootstrap, 4))
    attesters = start_attesters(localnet, network)
    localnet.start("node", [sys.executable, "-m", "xmargin.cli", "node", "run",
                            "--config", str(network.config_path)])
    node_epoch = tmp_path / "state" / "log-epoch.json"
    worker_epoch = tmp_path / "worker" / "log-epoch.json"
    wait_for("the node's epoch", node_epoch.exists, 60)
    # The worker adopts the log's epoch on its next check (every 10 s).
    wait_for("the worker's epoch", worker_epoch.exists, 60)
    held = json.loads(node_epoch.read_text())["epoch"]
    assert json.loads(worker_epoch.read_text())["epoch"] == held
    assert asyncio.run(epoch.read_epoch(bootstrap)) == held
    assert value(scrape(network.metrics_port), "xmargin_log_vanished") == 0
    # A trader, attested on both chains; then the operator's export (a backup).
    trader = anvil_account(3)
    chain_a = network.deployments[0]
    opened = open_positions(chain_a, trader, "ETH", collateral_usd=10_000, size=1.0)
    before = asyncio.run(wait_for_netted_attestation(
        bootstrap, trader.address.lower(), {chain_a.chain_id: opened}, 120.0))
    wait_for_oracles(network.deployments, trader.address, before.sequence, 120.0)
    export = tmp_path / "export"
    exported = cli("replay", "--config", str(network.config_path), "--from-beginning",
                   "--export", str(export))
    assert exported.returncode == 0, exported.stderr

    empty_the_broker()  # the same address, an empty log
    incidents = tmp_path / "state"
    wait_for("the node's incident", lambda: list(incidents.glob("incident-log-*.json")), 60)
    [incident] = incidents.glob("incident-log-*.json")
    evidence = json.loads(incident.read_text())
    assert evidence["expected_epoch"] == held and evidence["found_epoch"] is None
    assert "emptied or recreated" in evidence["reason"]
    # Halted, not gone: the HTTP server still answers, with the metric set.
    wait_for("the node's metric", lambda: value(scrape(network.metrics_port),
                                                "xmargin_log_vanished") == 1, 30)
    worker_dir = tmp_path / "worker"
    wait_for("the worker's incident", lambda: list(worker_dir.glob("incident-log-*.json")), 60)
    wait_for("the worker's metric", lambda: value(scrape(network.worker_metrics_port),
                                                  "xmargin_log_vanished") == 1, 30)
    # Each attester halts too (exit 3), with its incident.
    for proc, config in zip(attesters, network.attester_configs, strict=True):
        state = config.with_suffix("")
        wait_for(f"{config.stem}'s incident",
                 lambda s=state: list(s.glob("incident-log-*.json")), 60)
        wait_for(f"{config.stem} to exit", lambda p=proc: p.poll() is not None, 30)
        assert proc.returncode == 3
    # The node did not take the empty log for a new one: it wrote no epoch over it.
    assert asyncio.run(epoch.read_epoch(bootstrap)) is None
    localnet.stop("node")

    status = json.loads(cli("node", "status", "--config", str(network.config_path),
                            "--json").stdout)
    assert status["log"]["vanished"] and status["log"]["epoch"] == held
    assert [i["file"] for i in status["log"]["incidents"]] == [str(incident)]
    again = cli("node", "run", "--config", str(network.config_path), "--no-worker")
    assert again.returncode == 3, again.stderr
    assert "log vanished" in again.stderr and "incident-log-" in again.stderr

    # The operator's recovery: an empty broker, the export restored, the node again.
    empty_the_broker()
    restored = cli("log", "restore", "--config", str(network.config_path), "--from", str(export))
    assert restored.returncode == 0, restored.stderr
    assert "worker data directory emptied" in restored.stdout
    recovered = json.loads(cli("node", "status", "--config", str(network.config_path),
                               "--json").stdout)["log"]
    assert not recovered["vanished"] and recovered["epoch"] != held
    # The halt's incident and the refused start's: both about the old epoch now.
    assert [i["current"] for i in recovered["incidents"]] == [False, False]
    refused = cli("log", "restore", "--config", str(network.config_path), "--from", str(export))
    assert refused.returncode == 1 and "has an epoch" in refused.stderr  # not twice
    start_attesters(localnet, network, "-after")
    localnet.start("node-after", [sys.executable, "-m", "xmargin.cli", "node", "run",
                                  "--config", str(network.config_path)])
    traded = trade(chain_a, trader, "ETH", 0.5)
    after = asyncio.run(wait_for_netted_attestation(
        bootstrap, trader.address.lower(), {chain_a.chain_id: traded}, 180.0))
    # The worker rebuilt its states from the restored books and continued the trader
    # after its restored attestation: every oracle takes the new one.
    assert after.sequence > before.sequence
    readings = wait_for_oracles(network.deployments, trader.address, after.sequence, 120.0)
    assert all(r["sequence"] == after.sequence for r in readings)
    assert read_oracle(chain_a, trader.address)["equity_usd"] > 0
    localnet.stop("node-after")
    audit = cli("replay", "--config", str(network.config_path), "--from-beginning")
    assert audit.returncode == 0, audit.stdout[-2000:]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "xmargin.cli", *args], capture_output=True,
                          text=True, timeout=300)
