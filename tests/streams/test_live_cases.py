"""The worked cases of margin-model.md through the live path: books folded into a trader
state as the worker folds proven books, margined with the basis a worker's price view
derives from a real price log (Binance BTC and ETH daily closes, January–February 2020),
as the node attests them. Case 7 is in test_market_days (and on the broker in
tests/integration/test_adaptive_live.py), case 10 in test_backtest and test_market_days
(the worker's ranges and correlations are the backtest's)."""

from __future__ import annotations

from datetime import date
from functools import cache

import pytest

from engine import MarginParams, MarginResult
from streams.market_days import Basis
from streams.price_view import PriceView
from streams.risk import margin_by_market_set, oracle_prices
from streams.state import TraderState, apply_proven
from tests.streams.test_market_days import SETTINGS, folded, real_updates
from wire.records import Position, ProvenBook

WAD = 10**18
DAY = 86_400
P = MarginParams()
TRADER = "0x" + "ca" * 20


@cache
def view() -> PriceView:
    updates, _ = real_updates(date(2020, 1, 1), date(2020, 3, 1))
    return folded(updates)


def clock() -> int:
    return max(q.observed_at for s in view().quotes.values() for q in s.values())


def spot(asset: str) -> float:
    return view().quotes[asset]["1:0x" + "a1" * 20].price_wad / WAD


def perp(size: float, asset: str = "BTC", entry: float | None = None) -> Position:
    return Position(market=asset, size_wad=round(size * WAD),
                    entry_price_wad=round((entry or spot(asset)) * WAD))


def holding(size: float, asset: str = "BTC") -> Position:
    return Position(market=asset, kind="lending", size_wad=round(size * WAD),
                    entry_price_wad=0)


def option(kind: str, size: float, strike: float, days: float = 30) -> Position:
    return Position(market="BTC", kind=kind, size_wad=round(size * WAD), entry_price_wad=0,  # type: ignore[arg-type]
                    strike_wad=round(strike * WAD), expiry=clock() + int(days * DAY))


Live = tuple[MarginResult, int, Basis]


def live(*books: tuple[Position, ...], vol: float = 0.5) -> Live:
    """The trader holding ``books`` (one venue each, on chains 1, 2, …) margined as the
    worker margins it now."""
    state = TraderState(trader=TRADER)
    for i, positions in enumerate(books):
        block_hash = f"0x{i + 1:064x}"
        state = apply_proven(state, ProvenBook(
            event_id=f"{i + 1}:{block_hash}:0", chain_id=i + 1, venue="0x" + f"{i + 1:02x}" * 20,
            trader=TRADER, block_number=1, block_hash=block_hash, block_timestamp=clock(),
            state_root="0x" + "00" * 32, commitment="0x" + "22" * 32,
            collateral_wad=1_000_000 * WAD, positions=positions, account_proof=(),
            storage_slot="0x" + "00" * 32, storage_proof=()), i)
    prices = oracle_prices(state.markets, view().quotes, clock(), SETTINGS, view().windows)
    [margined] = margin_by_market_set([state], prices, P, {"BTC": vol, "ETH": 0.7},
                                      view().days)
    assert margined is not None
    result, row, basis = margined
    assert basis is not None and basis.record.day == clock() // DAY - 1
    return result, row, basis


def mm(m: Live, mode: str = "portfolio") -> float:
    result, row, _ = m
    figure = {"portfolio": result.maintenance_margin_usd, "isolated": result.isolated_mm_usd,
              "protocol_cross": result.protocol_cross_mm_usd}[mode]
    return float(figure[row])


def scan_range(m: Live, asset: str = "BTC") -> float:
    return next(r.range for r in m[2].record.ranges if r.asset == asset)


def test_the_live_basis_is_adaptive_not_the_static_range() -> None:
    m = live((perp(1.0),))
    assert scan_range(m) != P.scan_range
    assert P.scan_range * 1.25 <= scan_range(m) < 0.5  # floored and buffered


def test_case1_spot_hedged_with_perp_leaves_only_the_add_on() -> None:
    s = spot("BTC")
    m = live((holding(1.0),), (perp(-1.0),))
    assert mm(m) == pytest.approx((P.hedged_delta_charge + P.funding_provision) * s, rel=1e-9)
    alone = live((perp(1.0),))
    result, row, _ = alone
    worst = result.scenarios.describe(0, int(result.worst_scenario[row, 0]))
    assert worst["move"] == pytest.approx(-scan_range(alone))  # the perp scans at ±R


def test_case2_delta_hedged_short_call_saves_60_to_75_percent() -> None:
    s = spot("BTC")
    naked = live((option("call", -1.0, s),))
    hedge = -float(naked[0].delta[naked[1], 0])
    m = live((option("call", -1.0, s),), (perp(hedge),))
    saving = 1 - mm(m) / mm(m, "isolated")
    assert 0.60 <= saving <= 0.75, saving
    # ≈ 7% of spot on the ±16% grid; the live range is wider (buffered), and a hedged
    # short call loses about ½ Γ S² R² (+ vega), so the bounds widen with (R / 16%)².
    wider = scan_range(m) / P.scan_range
    assert 0.05 * s * wider <= mm(m) <= 0.10 * s * wider**2


def test_case3_naked_short_call_gets_no_relief() -> None:
    m = live((option("call", -1.0, spot("BTC")),))
    assert mm(m) == pytest.approx(mm(m, "isolated"))


def test_case4_far_otm_short_call_is_charged_for_the_crash_up() -> None:
    s = spot("BTC")
    m = live((option("call", -1.0, 1.5 * s),))
    assert 0.10 * s <= mm(m) <= 0.20 * s
    result, row, _ = m
    assert result.scenarios.describe(0, int(result.worst_scenario[row, 0]))["move"] > \
        scan_range(m)


def test_case5_debit_spread_never_above_its_maximum_loss() -> None:
    s = spot("BTC")
    m = live((option("call", 1.0, s), option("call", -1.0, 1.1 * s)))
    premium = float(m[0].option_value_usd[m[1]])
    assert 0 < mm(m) <= premium + 1e-6


def test_case6_pair_never_below_its_historical_loss() -> None:
    notional = 100_000.0
    m = live((perp(notional / spot("BTC")),),
             (perp(-notional / spot("ETH"), "ETH"),))
    [pair] = m[2].record.correlations
    assert pair.rho > 0.7  # BTC and ETH moved together in early 2020
    assert mm(m) >= P.floor_for("BTC", "ETH") * notional
    assert mm(m) < mm(m, "isolated")


def test_case8_gamma_short_needs_more_than_gamma_neutral() -> None:
    s = spot("BTC")
    short_call = option("call", -1.0, s)
    naked = live((short_call,))
    hedge = -float(naked[0].delta[naked[1], 0])
    gamma_short = live((short_call,), (perp(hedge),))
    gamma_neutral = live((short_call, option("call", 1.0, s, days=35)))
    assert abs(gamma_neutral[0].gamma[gamma_neutral[1], 0]) < abs(
        gamma_short[0].gamma[gamma_short[1], 0])
    assert mm(gamma_short) > mm(gamma_neutral)


def test_case9_long_on_chain_a_short_on_chain_b_nets_to_the_add_on() -> None:
    s = spot("BTC")
    m = live((perp(10.0),), (perp(-10.0),))
    funding = P.funding_provision * 2 * 10 * s
    assert mm(m) == pytest.approx(P.hedged_delta_charge * 10 * s + funding, rel=1e-9)
    r = scan_range(m)
    assert mm(m, "isolated") == pytest.approx(2 * (r + P.net_delta_charge) * 10 * s + funding,
                                              rel=1e-9)
    assert mm(m, "protocol_cross") == pytest.approx(mm(m, "isolated"))
