"""Implied volatility from a feed (oracle.vol.v1): the worker margins options with it,
a stale one widens the vega shocks, attestations list it, and an auditor holds it against
the log's rounds."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import numpy as np

from engine import MarginParams
from engine.scenarios import shocked_vols
from streams.oracle import OraclePrice
from streams.replay import Auditor
from streams.risk import margin_in_one_call, next_attestation
from streams.state import TraderState, apply_proven
from streams.worker import RiskWorker
from tests.streams.test_replay import (
    FEED,
    FINALITY,
    TRADER,
    Chain,
    log_of,
    proven,
)
from tests.streams.test_replay import SETTINGS as REPLAY_SETTINGS
from tests.streams.test_state import SETTINGS
from tests.streams.test_worker import FakeOutput, FakeTable, origin, price
from wire import topics
from wire.records import Position, PriceUpdate, Recompute

WAD = 10**18
T = 1_700_000_000
VOL_SOURCE = "41001:0x" + "d1" * 20


def vol(level: float, round_id: int, at: int = T) -> PriceUpdate:
    return PriceUpdate(asset="ETH", price_wad=round(level * WAD), source=VOL_SOURCE,
                       round_id=round_id, observed_at=at, chain_id=41001, block_number=7,
                       block_hash="0x" + "11" * 32)


def short_call_book() -> tuple[Position, ...]:
    return (Position(market="ETH", kind="call", size_wad=-10 * WAD, entry_price_wad=0,
                     strike_wad=3000 * WAD, expiry=T + 30 * 86_400),)


def worker_with(*vols: PriceUpdate) -> tuple[RiskWorker, FakeOutput]:
    from streams.price_view import PriceView
    from tests.streams.test_state import proven as book

    view = PriceView(SETTINGS)
    view.apply(price(3000, 1))
    for v in vols:
        view.apply_vol(v)
    log: list[str] = []
    output = FakeOutput(log)
    worker = RiskWorker(SETTINGS, MarginParams(), FakeTable(log), output, view)
    options = book(41001, 10, 0, 1.0).model_copy(update={
        "positions": short_call_book(), "collateral_wad": 100_000 * WAD})
    asyncio.run(worker.on_proven([(origin(0, 0), options)]))
    return worker, output


def test_options_are_margined_with_the_feeds_volatility_and_the_attestation_lists_it() -> None:
    _, configured = worker_with()  # no feed: streams.implied_vol, else 0.6
    _, at_60 = worker_with(vol(0.6, 1))
    _, at_120 = worker_with(vol(1.2, 1))
    [a_conf], [a60], [a120] = (o.attestations for o in (configured, at_60, at_120))
    assert a_conf.vols == ()
    assert a60.maintenance_margin_wad == a_conf.maintenance_margin_wad  # the same 60%
    [listed] = a120.vols
    assert (listed.asset, listed.price_wad, listed.degraded) == ("ETH", 12 * WAD // 10, False)
    assert [(r.source, r.round_id) for r in listed.rounds] == [(VOL_SOURCE, 1)]
    # Ten written calls are worth more at 120% than at 60%: equity falls by that (30 days
    # at the money, ≈ 0.4 · S · Δσ · √T = 2,060 for ten); the scan's worst case is a
    # crash up, where the calls are worth about their intrinsic value at any volatility.
    drop = (a60.equity_wad - a120.equity_wad) / WAD
    assert 1_900 < drop < 2_100
    assert a120.maintenance_margin_wad != a60.maintenance_margin_wad


def test_a_volatility_round_re_margins_the_option_holders() -> None:
    worker, output = worker_with(vol(0.6, 1))
    asyncio.run(worker.on_vols([(origin(0, 5), vol(0.9, 2, T + 60))]))
    [fanned] = output.fanned
    assert fanned.vol is not None and fanned.price is None
    asyncio.run(worker.on_recompute([(origin(0, 6), fanned)]))
    first, second = output.attestations
    assert second.vols[0].price_wad == 9 * WAD // 10
    assert second.equity_wad < first.equity_wad  # the written calls repriced
    assert second.issued_at == T + 60  # the data clock counts the volatility round


def test_a_stale_volatility_widens_the_vega_shocks() -> None:
    params = MarginParams()
    t = np.array([30 / 365])
    fresh = shocked_vols(np.array([0.6]), t, params)
    stale = shocked_vols(np.array([0.6]), t, params, np.array([True]))
    assert stale[0, 0] > fresh[0, 0] and stale[0, 2] < fresh[0, 2]
    assert stale[0, 1] == fresh[0, 1] == 0.6
    state = apply_proven(TraderState(trader=TRADER), proven(
        Chain(), 0.0, positions=short_call_book()), 0)
    prices = {"ETH": OraclePrice("ETH", 3000 * WAD, T, False)}
    figures = []
    for degraded in (False, True):
        implied = {"ETH": OraclePrice("ETH", 6 * WAD // 10, T, degraded)}
        result = margin_in_one_call([state], prices, params, None, None, implied)
        assert result is not None
        figures.append(float(result.maintenance_margin_usd[0]))
    assert figures[1] > figures[0]
    # The worker's aggregation marks a round older than vol_staleness_s degraded.
    _, old = worker_with(vol(0.6, 1, at=T - SETTINGS.vol_staleness_s - 1))
    assert old.attestations[0].vols[0].degraded


def test_an_auditor_holds_the_volatility_against_the_log_and_names_a_forged_one() -> None:
    chain = Chain()
    b1 = proven(chain, 0.0, positions=short_call_book())
    chain.extend(2)
    first = chain.headers[0]
    vol_round = PriceUpdate(asset="ETH", price_wad=7 * WAD // 10, source=VOL_SOURCE,
                            round_id=3, observed_at=T, chain_id=1, block_number=first.number,
                            block_hash=first.hash)
    state = apply_proven(TraderState(trader=TRADER), b1, 0)
    prices = {"ETH": OraclePrice("ETH", 3000 * WAD, T, False, rounds=((FEED, 1),))}
    implied = {"ETH": OraclePrice("ETH", 7 * WAD // 10, T, False, rounds=((VOL_SOURCE, 3),))}
    result = margin_in_one_call([state], prices, MarginParams(), None, None, implied)
    assert result is not None
    attestation = next_attestation(state, result, 0, REPLAY_SETTINGS, prices, None, implied)
    assert attestation is not None and attestation.vols

    def differences(*records: object) -> list[str]:
        # log_of files every PriceUpdate under oracle.price.v1: the round is a vol's.
        log = [replace(r, topic=topics.VOL) if r.value == vol_round.to_bytes() else r
               for r in log_of(chain, *records)]  # type: ignore[arg-type]
        report = Auditor(REPLAY_SETTINGS, MarginParams(), finality=FINALITY).feed_all(log)
        assert not report.problems, report.problems
        return report.traders[TRADER].differences

    assert differences(vol_round, b1, attestation) == []
    forged = attestation.model_copy(update={"vols": (attestation.vols[0].model_copy(
        update={"price_wad": 3 * WAD // 10}),)})
    assert (f"sequence 1: implied vol of ETH: price_wad {3 * WAD // 10}, its rounds give "
            f"{7 * WAD // 10}") in differences(vol_round, b1, forged)
    assert (f"sequence 1: implied vol of ETH: rounds not in oracle.vol.v1: ['{VOL_SOURCE}#3']"
            in differences(b1, attestation))


def test_recompute_records_carry_a_volatility() -> None:
    work = Recompute(vol=vol(0.5, 1))
    assert Recompute.model_validate_json(work.to_bytes()) == work
