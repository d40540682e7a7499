"""The adaptive model on the live path: daily closes folded from the price log, the
ranges and correlations the worker attests with, the same as ``xmargin backtest``'s, and
an auditor deriving them again."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest

from engine import MarginParams
from engine.adaptive import AdaptiveParams, risk_path
from streams.market_days import DAY_S
from streams.oracle import OraclePrice
from streams.price_view import PriceView
from streams.replay import Auditor
from streams.risk import margin_by_market_set, next_attestation, to_wad
from streams.state import TraderState, apply_proven
from tests.conftest import SHARED
from tests.streams.test_replay import FINALITY, TRADER, Chain, log_of
from tests.streams.test_replay import SETTINGS as REPLAY_SETTINGS
from tests.streams.test_state import SETTINGS
from tests.streams.test_worker import FakeOutput, FakeTable, origin
from wire.records import Position, PriceUpdate, ProvenBook, Recompute
from xmargin.backtest_report import load_closes

WAD = 10**18
FEED_A, FEED_B = "1:0x" + "a1" * 20, "1:0x" + "b2" * 20


def update(asset: str, usd: float, at: int, source: str = FEED_A, round_id: int = 1,
           block_hash: str = "0x" + "33" * 32) -> PriceUpdate:
    return PriceUpdate(asset=asset, price_wad=to_wad(usd), source=source, round_id=round_id,
                       observed_at=at, chain_id=1, block_number=1, block_hash=block_hash)


def folded(updates: list[PriceUpdate], max_deviation: float = 0.02) -> PriceView:
    """A worker's price view with ``updates`` folded in, in order."""
    view = PriceView(SETTINGS.model_copy(update={"max_price_deviation": max_deviation}))
    for u in updates:
        view.apply(u)
    return view


def test_a_day_closes_at_the_median_of_its_last_second_and_a_late_record_changes_nothing() -> None:
    day = 19_000
    start = day * DAY_S
    days = folded([
        update("ETH", 3000, start + 100, FEED_A, 1),
        update("ETH", 3010, start + 85_000, FEED_A, 2),
        update("ETH", 3030, start + 86_000, FEED_B, 1),
        # The first record of the next day closes day 19,000: the median of both fresh
        # sources at its last second, (3010 + 3030) / 2.
        update("ETH", 3100, start + DAY_S + 5, FEED_A, 3),
        # Late: observed on the closed day, read after it closed.
        update("ETH", 9000, start + 86_300, FEED_B, 2),
    ], max_deviation=0.5).days
    assert days.assets["ETH"].closes == ((day, 3020 * WAD),)
    assert days.assets["ETH"].open_day == day + 1
    assert days.closed_through(["ETH"]) == day
    assert days.closed_through(["ETH", "BTC"]) is None


def real_updates(start: date, end: date) -> tuple[list[PriceUpdate], dict[str, np.ndarray]]:
    """One oracle round per asset and day a minute before the day's end, at Binance's
    daily close; and the closes as ``xmargin backtest`` loads them."""
    days, closes = load_closes(SHARED / "data" / "prices", start, end)
    out = []
    for i, d in enumerate(days):
        end_s = int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()) + DAY_S
        out += [update(asset, float(closes[asset][i]), end_s - 60, round_id=i + 1)
                for asset in ("BTC", "ETH")]
    return out, {a: closes[a] for a in ("BTC", "ETH")}


def pair_book(at: int) -> ProvenBook:
    return ProvenBook(
        event_id="1:0x" + "77" * 32 + ":0", chain_id=41001, venue="0x" + "11" * 20,
        trader="0x" + "ab" * 20, block_number=1, block_hash="0x" + "77" * 32,
        block_timestamp=at, state_root="0x" + "00" * 32, commitment="0x" + "22" * 32,
        collateral_wad=50_000 * WAD,
        positions=(Position(market="BTC", size_wad=WAD, entry_price_wad=7_000 * WAD),
                   Position(market="ETH", size_wad=-50 * WAD, entry_price_wad=130 * WAD)),
        account_proof=(), storage_slot="0x" + "00" * 32, storage_proof=())


def test_the_worker_attests_the_backtests_ranges_and_correlations_for_the_same_days() -> None:
    from streams.worker import RiskWorker

    first, last = date(2020, 1, 1), date(2020, 6, 30)  # March 2020 inside
    updates, closes = real_updates(first, last)
    first_day = updates[0].observed_at // DAY_S
    view = PriceView(SETTINGS)
    log: list[str] = []
    output = FakeOutput(log)
    worker = RiskWorker(SETTINGS, MarginParams(), FakeTable(log), output, view)
    view.apply(updates[0])
    view.apply(updates[1])
    asyncio.run(worker.on_proven([(origin(0, 0), pair_book(updates[0].observed_at))]))
    for offset, u in enumerate(updates[2:], 1):
        view.apply(u)  # the worker's view folds the record, then its recompute arrives
        asyncio.run(worker.on_recompute([(origin(0, offset), Recompute(price=u))]))
    path = risk_path(np.stack([closes["BTC"], closes["ETH"]], axis=1), AdaptiveParams())
    compared = set()
    for a in output.attestations:
        if a.risk is None:
            continue
        row = a.risk.day - first_day
        assert [(r.asset, r.range) for r in a.risk.ranges] == [
            ("BTC", float(path.ranges[row, 0])), ("ETH", float(path.ranges[row, 1]))]
        [pair] = a.risk.correlations
        assert (pair.a, pair.b, pair.rho) == ("BTC", "ETH", float(path.correlation[row, 0, 1]))
        compared.add(a.risk.day)
    # From the first warm day on (30 returns), every day that moved the figures.
    assert len(compared) >= 60
    assert max(compared) == updates[-1].observed_at // DAY_S - 1
    # March 2020 doubled the scan: the model the node margins with is not the fixed one.
    ranges = [r.range for a in output.attestations if a.risk for r in a.risk.ranges]
    assert max(ranges) > 2 * MarginParams().scan_range


def calm_then_shock(days: int, sigma: float, shock: float, start_day: int = 19_000
                    ) -> list[PriceUpdate]:
    """ETH closing ±``sigma`` (log) on alternate days, then one ``shock`` (log) move, then
    one more record on the next day at the shocked price (it closes the shocked day)."""
    usd = [3000.0 * float(np.exp(sigma * (i % 2))) for i in range(days)]
    usd += [usd[-1] * float(np.exp(shock))] * 2
    return [update("ETH", round(p, 6), (start_day + i) * DAY_S + 3600, round_id=i + 1)
            for i, p in enumerate(usd)]


def test_case7_volatility_doubling_overnight_raises_the_live_margin_at_most_60_percent() -> None:
    # σ̂ = 4% a day (above the 16% floor: 3 · 0.04 · √2 = 17%); a 28% move the next day
    # nearly doubles it (EWMA: 0.94 · 0.04² + 0.06 · 0.28² ≈ (0.079)²).
    updates = calm_then_shock(45, 0.04, 0.28)
    view = folded(updates[:-1])
    days = view.days
    book = pair_book(updates[0].observed_at).model_copy(update={"positions": (
        Position(market="ETH", size_wad=-10 * WAD, entry_price_wad=3000 * WAD),)})
    state = apply_proven(TraderState(trader=TRADER), book, 0)
    shocked = updates[-1].price_wad
    prices = {"ETH": OraclePrice("ETH", shocked, updates[-1].observed_at, False)}

    def mm() -> tuple[int, float]:
        [(result, row, basis)] = margin_by_market_set([state], prices, MarginParams(),
                                                      days=days)
        assert basis is not None
        return int(result.maintenance_margin_usd[row]), basis.record.ranges[0].range

    before, range_before = mm()  # the shocked day not closed yet
    view.apply(updates[-1])  # the next day's record closes the shocked day
    after, range_after = mm()
    assert range_after > 1.5 * range_before  # the scan nearly doubled …
    assert before * 1.3 < after <= before * 1.60  # … the margin, buffered, rose < 60%


def test_an_auditor_derives_the_ranges_again_and_names_a_forged_one() -> None:
    chain = Chain()
    book_chain = chain
    from tests.streams.test_replay import proven
    b1 = proven(book_chain, 1.0)
    chain.extend(2)
    first = chain.headers[0]
    rounds = calm_then_shock(40, 0.04, 0.0)[:-1]
    rounds = [r.model_copy(update={"source": "1:0x" + "fe" * 20, "block_hash": first.hash,
                                   "block_number": first.number}) for r in rounds]
    days = folded(rounds).days
    state = apply_proven(TraderState(trader=TRADER), b1, 0)
    last = rounds[-1]
    prices = {"ETH": OraclePrice("ETH", last.price_wad, last.observed_at, False,
                                 rounds=((last.source, last.round_id),))}
    [(result, row, basis)] = margin_by_market_set([state], prices, MarginParams(), days=days)
    assert basis is not None and basis.record.day == last.observed_at // DAY_S - 1
    attestation = next_attestation(state, result, row, REPLAY_SETTINGS, prices, basis)
    assert attestation is not None and attestation.risk == basis.record

    def audited(*records: object) -> list[str]:
        report = Auditor(REPLAY_SETTINGS, MarginParams(), finality=FINALITY).feed_all(
            log_of(chain, *rounds, *records, rounds=False))  # type: ignore[arg-type]
        return report.traders[TRADER].differences

    assert audited(b1, attestation) == []
    # A day the log never closes cannot be derived: the auditor names the difference.
    narrow = attestation.risk.model_copy(update={"ranges": (
        attestation.risk.ranges[0].model_copy(update={"range": 0.05}),)})
    forged = attestation.model_copy(update={"risk": narrow})
    assert audited(b1, forged) == ["sequence 1: recomputed differs in ['risk']"]
    unclosed = attestation.model_copy(update={"risk": attestation.risk.model_copy(
        update={"day": attestation.risk.day + 5})})
    [difference] = audited(b1, unclosed)
    assert difference.startswith("sequence 1: recomputed differs in [") and "'risk'" in difference


def test_an_auditor_names_an_attestation_margined_with_old_closes() -> None:
    chain = Chain()
    from tests.streams.test_replay import proven
    b1 = proven(chain, 1.0)
    chain.extend(2)
    first = chain.headers[0]
    rounds = [r.model_copy(update={"source": "1:0x" + "fe" * 20, "block_hash": first.hash,
                                   "block_number": first.number})
              for r in calm_then_shock(40, 0.04, 0.0)[:-1]]
    old = folded(rounds[:-3]).days  # a worker three days behind the log
    state = apply_proven(TraderState(trader=TRADER), b1, 0)
    last = rounds[-4]
    prices = {"ETH": OraclePrice("ETH", last.price_wad, last.observed_at, False,
                                 rounds=((last.source, last.round_id),))}
    [(result, row, basis)] = margin_by_market_set([state], prices, MarginParams(), days=old)
    stale = next_attestation(state, result, row, REPLAY_SETTINGS, prices, basis)
    assert stale is not None and stale.risk is not None
    report = Auditor(REPLAY_SETTINGS, MarginParams(), finality=FINALITY).feed_all(
        log_of(chain, *rounds, b1, stale, rounds=False))
    assert report.traders[TRADER].differences == [
        f"sequence 1: margined with the closes of day {stale.risk.day}, the log had closed "
        f"day {stale.risk.day + 3}"]


def test_without_enough_closes_the_static_model_is_used_and_named_so() -> None:
    days = folded(calm_then_shock(10, 0.04, 0.0)).days
    assert days.closed_through(["ETH"]) is not None
    assert days.basis(("ETH",), MarginParams()) is None  # not warm: 30 returns needed


@pytest.mark.parametrize("bad", [{"BTC-ETH": 0.1}, {"BTC/BTC": 0.1}, {"BTC/ETH": -0.1}])
def test_a_bad_pair_floor_is_refused_naming_it(bad: dict[str, float]) -> None:
    from engine import ParamsError

    with pytest.raises(ParamsError) as refused:
        MarginParams(pair_loss_floor=bad)
    assert f"pair_loss_floor.{next(iter(bad))}" in str(refused.value)


def test_the_what_if_cli_margins_with_the_market_the_log_gives(tmp_path: Path) -> None:
    # `xmargin market` folds the node's price log (here an export) into the market block
    # `xmargin margin --market` takes: the what-if figure is the node's own.
    from typer.testing import CliRunner

    from streams.audit_log import export
    from tests.support.configs import node_config
    from xmargin.cli import app

    rounds = calm_then_shock(45, 0.04, 0.0)[:-1]
    export(log_of(Chain(), *rounds, rounds=False), tmp_path / "log")
    config = node_config(tmp_path / "node.toml")
    runner = CliRunner()
    made = runner.invoke(app, ["market", "--config", str(config), "--from",
                               str(tmp_path / "log"), "--out", str(tmp_path / "market.json")])
    assert made.exit_code == 0, made.output
    market = json.loads((tmp_path / "market.json").read_text())
    view = folded(rounds)
    basis = view.days.basis(("ETH",), MarginParams())
    assert basis is not None
    assert market["day"] == basis.record.day
    assert market["underlyings"]["ETH"]["range"] == basis.record.ranges[0].range > 0.2
    book = {"traders": [{"id": "t", "collateral_usd": 10_000, "positions": [
        {"underlying": "ETH", "kind": "perp", "size": 10, "entry_price": 3000,
         "venue": "v", "chain": "1"}]}]}
    (tmp_path / "book.json").write_text(json.dumps(book))
    run = runner.invoke(app, ["margin", "--book", str(tmp_path / "book.json"), "--market",
                              str(tmp_path / "market.json"), "--json"])
    assert run.exit_code == 0, run.output
    figures = json.loads(run.output)["traders"]["t"]
    last = rounds[-1]
    state = apply_proven(TraderState(trader=TRADER), pair_book(last.observed_at).model_copy(
        update={"positions": (Position(market="ETH", size_wad=10 * WAD,
                                       entry_price_wad=3000 * WAD),)}), 0)
    prices = {"ETH": OraclePrice("ETH", last.price_wad, last.observed_at, False)}
    [(result, row, _)] = margin_by_market_set([state], prices, MarginParams(), days=view.days)
    assert figures["maintenance_margin"] == pytest.approx(
        float(result.maintenance_margin_usd[row]), rel=1e-12)
    bad = dict(market, underlyings={"ETH": {**market["underlyings"]["ETH"], "range": 1.5}})
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    refused = runner.invoke(app, ["margin", "--book", str(tmp_path / "book.json"),
                                  "--market", str(tmp_path / "bad.json")])
    assert refused.exit_code == 2
    assert "market.underlyings.ETH.range" in refused.output


def test_log_restore_refuses_a_folder_that_is_not_an_export(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tests.support.configs import node_config
    from xmargin.cli import app

    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "oracle.price.v1.jsonl").write_text("not json\n")
    config = node_config(tmp_path / "node.toml")
    run = CliRunner().invoke(app, ["log", "restore", "--config", str(config), "--from",
                                   str(tmp_path / "export")])
    assert run.exit_code == 2
    assert "--from" in run.output and "not an export: JSONDecodeError" in run.output
