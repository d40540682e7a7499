"""Correlation can only give the credit history allows: matrices must be positive
semi-definite, stress never lowers a requirement, and netting never costs more."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import BookError, MarginParams, Market
from engine.margin import correlated
from tests.engine.test_margin import BTC, margin, mm, option, perp

THREE = {"BTC": {"spot": BTC, "vol": 0.5}, "ETH": {"spot": 3000.0, "vol": 0.6},
         "SOL": {"spot": 150.0, "vol": 0.8}}


def test_a_correlation_matrix_that_is_not_psd_is_refused_naming_the_field() -> None:
    # 0.9 / 0.9 / −0.9: every entry in [−1, 1], but no three returns correlate so. A
    # long / short / long book got K² < 0 here, rounded up to 0: the scan vanished.
    book = [perp(1.0), perp(-20.0, underlying="ETH", entry=3000.0),
            perp(400.0, underlying="SOL", entry=150.0)]
    with pytest.raises(BookError) as refused:
        margin(book, {"BTC/ETH": 0.9, "BTC/SOL": 0.9, "ETH/SOL": -0.9}, **THREE)
    assert "correlation" in str(refused.value)
    assert "positive semi-definite" in str(refused.value)
    # The same book on a valid matrix margins above the largest leg alone.
    valid = mm(margin(book, {"BTC/ETH": 0.9, "BTC/SOL": 0.9, "ETH/SOL": 0.8}, **THREE))
    assert valid >= mm(margin([perp(1.0)], **THREE)) * 0.99


def test_a_long_option_beside_linear_legs_never_costs_more_than_alone() -> None:
    # 0.5 BTC spot + 0.5 BTC perp + a long call: the call alone is capped at its value,
    # which it lost in a group with linear legs (12,771 portfolio against 12,532).
    book = [{"underlying": "BTC", "kind": "spot", "size": 0.5, "venue": "wallet"},
            perp(0.5), option("call", 0.5, BTC)]
    r = margin(book)
    assert mm(r) <= mm(r, "protocol_cross") <= mm(r, "isolated")


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["spot", "perp", "call", "put"]),
                          st.floats(-5, 5, allow_nan=False).filter(lambda x: abs(x) > 1e-3),
                          st.sampled_from([0.8, 1.0, 1.2]), st.integers(0, 2),
                          st.sampled_from(["BTC", "ETH"])),
                min_size=1, max_size=8),
       st.floats(-0.5, 0.95), st.floats(0.0, 1.0))
def test_portfolio_never_above_protocol_cross_never_above_isolated(
        legs: list[tuple[str, float, float, int, str]], rho: float, stress: float) -> None:
    book: list[dict[str, Any]] = []
    spots = {"BTC": BTC, "ETH": 3000.0}
    for kind, size, moneyness, venue, underlying in legs:
        spot = spots[underlying]
        if kind in ("call", "put"):
            leg = option(kind, size, moneyness * spot, venue=f"o{venue}")
            leg["underlying"] = underlying
        elif kind == "perp":
            leg = perp(size, underlying=underlying, venue=f"p{venue}", entry=spot)
        else:
            leg = {"underlying": underlying, "kind": "spot", "size": abs(size),
                   "venue": f"w{venue}"}
        book.append(leg)
    r = margin(book, {"BTC/ETH": rho}, MarginParams(correlation_stress=stress),
               BTC={"spot": BTC, "vol": 0.5}, ETH={"spot": 3000.0, "vol": 0.6})
    assert 0.0 <= mm(r) <= mm(r, "protocol_cross") <= mm(r, "isolated")


def loadings(draw: Any, n: int) -> np.ndarray:
    """A random correlation matrix: normalised factor loadings, PSD by construction."""
    common = np.array(draw(st.lists(st.floats(-1, 1), min_size=n * 3, max_size=n * 3)))
    f = np.hstack([common.reshape(n, 3), np.eye(n) * 0.05])  # no row is ever zero
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    rho = np.clip(f @ f.T, -1.0, 1.0)
    np.fill_diagonal(rho, 1.0)
    return (rho + rho.T) / 2


@settings(max_examples=200, deadline=None)
@given(st.data(), st.integers(2, 4))
def test_random_correlations_never_give_a_negative_k_squared(data: Any, n: int) -> None:
    rho = loadings(data.draw, n)
    market = Market(spot_usd=np.ones(n), vol=np.full(n, 0.5), correlation=rho)
    market.validate(n)  # a genuine correlation matrix passes
    ws = np.array([data.draw(st.lists(st.floats(-1e6, 1e6), min_size=n, max_size=n))])
    stress = data.draw(st.floats(0.0, 1.0))
    k = correlated(ws, market, MarginParams(correlation_stress=stress))[0]
    k2 = float((ws[0][:, None] * rho * ws[0][None, :]).sum())
    scale = float(np.abs(ws).sum()) ** 2
    assert k2 >= -1e-9 * (1.0 + scale)  # PSD: only rounding below zero
    assert k * k >= k2 - 1e-9 * (1.0 + scale)  # stress never lowers it
    assert k <= np.abs(ws).sum() * (1 + 1e-12) + 1e-9  # nor raises it past no credit at all


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1, 1), min_size=3, max_size=3))
def test_any_symmetric_matrix_is_refused_exactly_when_it_is_not_psd(off: list[float]) -> None:
    rho = np.eye(3)
    rho[0, 1] = rho[1, 0] = off[0]
    rho[0, 2] = rho[2, 0] = off[1]
    rho[1, 2] = rho[2, 1] = off[2]
    market = Market(spot_usd=np.ones(3), vol=np.full(3, 0.5), correlation=rho)
    if np.linalg.eigvalsh(rho)[0] < -1e-9:
        with pytest.raises(BookError, match="positive semi-definite"):
            market.validate(3)
    else:
        market.validate(3)


@settings(max_examples=200, deadline=None)
@given(st.data(), st.integers(2, 4))
def test_a_floor_on_spread_credit_only_ever_adds_to_k(data: Any, n: int) -> None:
    from engine.margin import spread_caps

    rho = loadings(data.draw, n)
    market = Market(spot_usd=np.ones(n), vol=np.full(n, 0.5), correlation=rho)
    names = tuple("ABCD"[:n])
    floors = {f"{names[i]}/{names[j]}": data.draw(st.floats(0.0, 1.9))
              for i in range(n) for j in range(i + 1, n)}
    params = MarginParams(pair_loss_floor=floors)
    ranges = np.array(data.draw(st.lists(st.floats(0.01, 0.95), min_size=n, max_size=n)))
    caps = spread_caps(names, ranges, params)
    ws = np.array([data.draw(st.lists(st.floats(-1e6, 1e6), min_size=n, max_size=n))])
    plain = correlated(ws, market, params)[0]
    floored = correlated(ws, market, params, caps)[0]
    scale = float(np.abs(ws).sum())
    assert floored >= plain - 1e-9 * (1.0 + scale)
    assert floored <= scale * (1 + 1e-12) + 1e-9  # never beyond no credit at all


def test_the_pair_floors_in_the_parameters_are_those_of_the_real_history() -> None:
    # engine.params.PAIR_LOSS_FLOOR, recomputed as `xmargin backtest` does: 2019–2024
    # Binance daily closes, 2-day horizon, 99%, the worse direction, rounded up.
    from datetime import date

    from engine.backtest import pair_loss_floors
    from engine.params import PAIR_LOSS_FLOOR
    from tests.conftest import SHARED
    from xmargin.backtest_report import load_closes

    _, closes = load_closes(SHARED / "data" / "prices", date(2019, 1, 1), date(2024, 12, 31))
    computed = pair_loss_floors(closes)
    assert set(computed) == set(PAIR_LOSS_FLOOR)
    for pair, floor in computed.items():
        assert PAIR_LOSS_FLOOR[pair] == np.ceil(floor * 10_000) / 10_000, pair
    # The figure: long BTC / short ETH, $100k a leg, ≈ 11,190 over two days.
    assert 11_150 < computed["BTC/ETH"] * 100_000 < 11_250
