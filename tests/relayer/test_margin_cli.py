"""``xmargin margin``: the README's example book, JSON keys, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from devnet.localnet import REPO
from xmargin.cli import app

runner = CliRunner()
EXAMPLE = REPO / "examples" / "book.json"


def test_example_book_in_json() -> None:
    result = runner.invoke(app, ["margin", "--book", str(EXAMPLE), "--json"])
    assert result.exit_code == 0, result.output
    traders = json.loads(result.stdout)["traders"]
    hedged = traders["hedged-across-chains"]
    assert set(hedged) >= {"equity", "maintenance_margin", "initial_margin", "health",
                           "free_collateral", "greeks", "modes"}
    assert set(hedged["modes"]) == {"isolated", "protocol_cross", "portfolio"}
    assert set(hedged["greeks"]["ETH"]) >= {"delta", "gamma", "vega"}
    assert hedged["maintenance_margin"] < hedged["modes"]["isolated"]["maintenance_margin"]


def test_table_and_params_file(tmp_path: Path) -> None:
    params = tmp_path / "p.toml"
    params.write_text("version = 3\nscan_range = 0.2\n")
    result = runner.invoke(app, ["margin", "--book", str(EXAMPLE), "--params", str(params)])
    assert result.exit_code == 0 and "parameters v3" in result.stdout


def test_bad_book_names_trader_position_and_field(tmp_path: Path) -> None:
    doc = json.loads(EXAMPLE.read_text())
    doc["traders"][1]["positions"][0]["strike"] = -1
    book = tmp_path / "b.json"
    book.write_text(json.dumps(doc))
    result = runner.invoke(app, ["margin", "--book", str(book)])
    assert result.exit_code == 2
    assert "traders[covered-call-writer].positions[0].strike" in result.stderr


def test_unknown_parameter_is_named(tmp_path: Path) -> None:
    params = tmp_path / "p.toml"
    params.write_text("scan_rnage = 0.2\n")
    result = runner.invoke(app, ["margin", "--book", str(EXAMPLE), "--params", str(params)])
    assert result.exit_code == 2 and "scan_rnage" in result.stderr
