"""``xmargin node status`` reads a node's state directory: heights, halts with their
evidence, deliveries retried or dead-lettered, and transactions in flight."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from relayer.chain.checkpoint import Checkpoint
from relayer.delivery.retries import InFlight, InFlightStore, RetryEntry, RetryStore
from relayer.settlement.service import SettlementEntry, SettlementStore
from tests.support.configs import node_config
from xmargin.cli import app


def test_status_shows_what_the_state_directory_holds(tmp_path: Path) -> None:
    state = tmp_path / "state"
    config = node_config(tmp_path / "node.toml", state_dir=state)
    Checkpoint(120, ((119, "0x" + "11" * 32),), 118).save(state / "listener-41001.json")
    (state / "incident-41001-117.json").write_text(json.dumps({
        "block": 117, "reason": "reorg below finality", "published_hash": "0x" + "22" * 32,
        "providers": {"http://a": "0x" + "33" * 32}}))
    RetryStore(state / "deliveries-41001.json").put(
        "0xab:7", RetryEntry(8, 0.0, "simulation reverted: stale", "dead_lettered"))
    InFlightStore(state / "in-flight-41001.json").put(
        "0xab:8", InFlight(5, 3 * 10**9, 10**9, "0x" + "44" * 32))
    result = CliRunner().invoke(app, ["node", "status", "--config", str(config)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "a (41001): HALTED; published through block 119, final through 117" in out
    assert "incident at block 117: reorg below finality" in out
    assert "delivery 0xab:7: dead_lettered after 8 attempt(s): simulation reverted" in out
    assert "in flight 0xab:8: nonce 5" in out and "max fee 3 gwei" in out
    as_json = json.loads(CliRunner().invoke(
        app, ["node", "status", "--config", str(config), "--json"]).output)
    assert as_json["chains"]["a"]["deliveries"]["0xab:7"]["status"] == "dead_lettered"


def test_status_lists_settlements_by_stage_with_what_each_waits_for(tmp_path: Path) -> None:
    state = tmp_path / "state"
    config = node_config(tmp_path / "node.toml", state_dir=state)
    store = SettlementStore(state / "settlements.json")
    store.put("0xab:1", SettlementEntry("0xab", 1, 41002, 41001, 485_000_000, "realized loss",
                                        "credited", "", "0x" + "55" * 32, 1.0))
    store.put("0xab:2", SettlementEntry("0xab", 2, 41002, 41001, 7, "buffer", "final",
                                        "header 140 not vouched for: 1 of 2 attesters vouched",
                                        "", 2.0))
    (state / "settlement-violations.json").write_text(json.dumps(
        ["order 0x01 queued on 41001 for 9 without that debit on 41002"]))
    out = CliRunner().invoke(app, ["node", "status", "--config", str(config)]).output
    assert ("settlement 0xab:1: credited, 485000000 units 41002→41001 (realized loss); "
            f"last tx 0x{'55' * 32}") in out
    assert ("settlement accountant: order 0x01 queued on 41001 for 9 without that debit "
            "on 41002") in out
    assert ("settlement 0xab:2: final, 7 units 41002→41001 (buffer): header 140 not vouched "
            "for: 1 of 2 attesters vouched") in out
    as_json = json.loads(CliRunner().invoke(
        app, ["node", "status", "--config", str(config), "--json"]).output)
    assert as_json["settlements"]["0xab:2"]["stage"] == "final"
