"""A log that vanishes: Tansu restarted empty under a running node and its worker. Both
find the log no longer holds the epoch they built on and halt, with an incident file and
``xmargin_log_vanished`` at 1, instead of carrying on over an empty log; a node started
again over it refuses to start (exit 3)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bus import epoch
from bus.admin import ensure_topics
from devnet.hedge import setup_network
from devnet.localnet import LocalNet
from tests.integration.test_end_to_end import scrape, value

pytestmark = pytest.mark.integration


def wait_for(what: str, found: object, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found():  # type: ignore[operator]
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} not within {timeout_s} s")


def test_a_broker_restarted_empty_halts_the_node_and_its_worker(localnet: LocalNet,
                                                                tmp_path: Path) -> None:
    bootstrap = localnet.broker()  # this module's own Tansu: it is restarted below
    port = int(bootstrap.rsplit(":", 1)[1])
    chains = [localnet.chain(41001), localnet.chain(41002)]
    network = setup_network(tmp_path, bootstrap, chains, prices={"ETH": 3000})
    asyncio.run(ensure_topics(bootstrap, 4))
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

    localnet.stop("tansu")
    localnet.broker(port)  # the same address, an empty log
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
    assert value(scrape(network.worker_metrics_port), "xmargin_log_vanished") == 1
    # The node did not take the empty log for a new one: it wrote no epoch over it.
    assert asyncio.run(epoch.read_epoch(bootstrap)) is None
    localnet.stop("node")

    again = subprocess.run([sys.executable, "-m", "xmargin.cli", "node", "run", "--config",
                            str(network.config_path), "--no-worker"],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 3, again.stderr
    assert "log vanished" in again.stderr and "incident-log-" in again.stderr
