"""Auto-deleveraging proposals: the ranking, the sizing to the wei, and what is never a
candidate."""

from __future__ import annotations

from fractions import Fraction

import pytest
from typer.testing import CliRunner

from engine.deleveraging import Candidate, propose, ranked
from xmargin.cli import app

WAD = 10**18


def short(trader: str, size: int, equity: int, entry: int = 3000, price: int = 2000) -> Candidate:
    return Candidate(trader, "ETH", -size * WAD, entry * WAD, price * WAD, equity * WAD)


def test_ranked_by_profit_ratio_times_global_leverage() -> None:
    a = short("0xa", 1, 10_000)  # 1/3 x 2,000/10,000
    b = short("0xb", 1, 1_000)   # 1/3 x 2,000/1,000
    c = short("0xc", 3, 10_000)  # 1/3 x 6,000/10,000
    assert [x.trader for x in ranked([a, b, c])] == ["0xb", "0xc", "0xa"]
    assert b.score == Fraction(2, 3)


def test_losing_positions_and_accounts_without_equity_are_never_candidates() -> None:
    losing = Candidate("0xa", "ETH", WAD, 3000 * WAD, 2000 * WAD, 1_000 * WAD)
    broke = short("0xb", 1, 0)
    flat = short("0xc", 1, 1_000, entry=2000)
    assert ranked([losing, broke, flat]) == []
    assert propose(5 * WAD, [losing, broke, flat]).uncovered_wad == 5 * WAD


def test_each_close_covers_what_is_left_and_rounds_towards_covering() -> None:
    # $700 from a 1-ETH short $1,000 in profit: 0.7 ETH exactly.
    (step,) = propose(700 * WAD, [short("0xa", 1, 1_000)]).steps
    assert (step.close_wad, step.profit_wad, step.haircut_wad) == (-7 * WAD // 10, 700 * WAD,
                                                                   700 * WAD)
    # An awkward deficit: the close rounds up by a wei of size, the haircut is exact.
    deficit = 333_333_333_333_333_333_333
    proposal = propose(deficit, [short("0xa", 1, 1_000), short("0xb", 1, 10_000)])
    (step,) = proposal.steps
    assert step.profit_wad >= deficit == step.haircut_wad and proposal.uncovered_wad == 0
    assert -step.close_wad * 1_000 >= deficit


def test_what_the_profits_cannot_cover_stays_uncovered() -> None:
    proposal = propose(5_000 * WAD, [short("0xa", 1, 1_000), short("0xb", 2, 10_000)])
    assert [s.close_wad for s in proposal.steps] == [-WAD, -2 * WAD]
    assert (proposal.covered_wad, proposal.uncovered_wad) == (3_000 * WAD, 2_000 * WAD)
    with pytest.raises(ValueError, match="deficit_wad"):
        propose(-1, [])


def test_the_cli_names_rpc_url_when_the_chain_is_unreachable() -> None:
    result = CliRunner().invoke(app, ["adl", "--rpc-url", "http://127.0.0.1:9",
                                      "--venue", "0x" + "11" * 20])
    assert result.exit_code == 2 and "--rpc-url" in result.output
