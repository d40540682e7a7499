"""Cross-chain settlement through the whole system, on both brokers: a loss realized on
chain A beyond the trader's cash there becomes a settlement order on the worker's
attestation, the attesters reproduce and sign it, the node debits chain B, the attesters
vouch for the debit's final header, and A's vault credits against the storage proof.
Balances to the unit, value conserved, each side once, the stages in node status."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bus.admin import ensure_topics
from bus.consumer import tail_of
from devnet.hedge import setup_network, start_attesters
from devnet.localnet import LocalNet
from devnet.settle import CASH_B, USDC, run_settlement
from tests.support.metrics import scrape
from wire import topics
from wire.records import Attestation, SettlementOrder, decode

pytestmark = pytest.mark.integration


def test_a_realized_loss_is_settled_across_chains_end_to_end(
        localnet: LocalNet, broker: str, chain_urls: list[str], tmp_path: Path) -> None:
    network = setup_network(tmp_path, broker, chain_urls, prices={"ETH": 3000}, settle=True)
    asyncio.run(ensure_topics(broker, 4))
    start_attesters(localnet, network)
    localnet.start("node", [sys.executable, "-m", "xmargin.cli", "node", "run",
                            "--config", str(network.config_path)])
    summary = run_settlement(network, timeout_s=180)
    a, b = network.deployments[:2]
    need = summary["need_units"]
    assert need > 0                                            # A's venue was short
    assert [d["amount_units"] for d in summary["debits"]] == [need]   # once, on B
    assert [c["amount_units"] for c in summary["credits"]] == [need]  # once, on A
    assert summary["debits"][0]["order_id"] == summary["credits"][0]["order_id"]
    assert summary["after"]["a"]["cash_units"] == 0           # made whole, to the unit
    assert summary["after"]["b"]["cash_units"] == CASH_B * USDC - need
    assert summary["conserved"], summary["tokens_total_units"]
    status = json.loads(subprocess.run(
        [sys.executable, "-m", "xmargin.cli", "node", "status", "--config",
         str(network.config_path), "--json"], capture_output=True, check=True).stdout)
    [entry] = [e for k, e in status["settlements"].items() if k.startswith(summary["trader"])]
    assert entry["stage"] == "credited" and entry["amount"] == need
    assert (entry["src_chain"], entry["dst_chain"]) == (b.chain_id, a.chain_id)
    # The order on risk.settlement.v1 is the one its attestation carries, and replay
    # reproduces that attestation (orders and all) byte for byte.
    orders = [o for o in (decode(SettlementOrder, raw) for raw in asyncio.run(
        tail_of(broker, topics.SETTLEMENT, set(range(4)), None))) if o.trader == summary["trader"]]
    assert [(o.nonce, o.amount) for o in orders] == [(1, need)]
    carrying = [a for a in (decode(Attestation, raw) for raw in asyncio.run(
        tail_of(broker, topics.ATTESTATION, set(range(4)), None)))
        if a.trader == summary["trader"] and a.settlements]
    assert [a.settlements for a in carrying][:1] == [tuple(orders)]
    replay = subprocess.run([sys.executable, "-m", "xmargin.cli", "replay", "--config",
                             str(network.config_path), "--from-beginning", "--json"],
                            capture_output=True, text=True, timeout=180)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    report = json.loads(replay.stdout)
    assert report["ok"] and report["matched"] == report["attestations"]
    metrics = scrape(network.metrics_port)
    assert metrics[("xmargin_settlements_total", (("stage", "credited"),))] >= 1
