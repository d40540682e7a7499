"""Black-76 prices and Greeks against QuantLib and against Deribit's own Greeks."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import QuantLib as ql
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq

from engine.pricing import black76, black76_greeks
from tests.conftest import SHARED

DERIBIT = SHARED / "data/options/deribit-chain-snapshots/btc_chain_2026-03_tessicin.csv"
YEAR_S = 365 * 86400


@settings(max_examples=200, deadline=None)
@given(call=st.booleans(), spot=st.floats(100, 200_000), moneyness=st.floats(0.3, 3.0),
       t=st.floats(1 / 365, 3.0), vol=st.floats(0.05, 2.0), rate=st.floats(0.0, 0.1))
def test_price_and_greeks_match_quantlib(call: bool, spot: float, moneyness: float, t: float,
                                         vol: float, rate: float) -> None:
    strike = spot * moneyness
    forward = spot * np.exp(rate * t)
    discount = np.exp(-rate * t)
    payoff = ql.PlainVanillaPayoff(ql.Option.Call if call else ql.Option.Put, strike)
    calc = ql.BlackCalculator(payoff, forward, vol * np.sqrt(t), discount)
    ours = float(black76(np.array(call), np.array(forward), np.array(strike), np.array(t),
                         np.array(vol), rate))
    assert ours == pytest.approx(calc.value(), rel=1e-7, abs=1e-7 * spot)
    delta, gamma, vega = black76_greeks(np.array(call), np.array(spot), np.array(strike),
                                        np.array(t), np.array(vol), rate)
    # Spot Greeks with F = S e^{rT}: the discount and the growth of F cancel.
    assert float(delta) == pytest.approx(calc.delta(spot), abs=1e-7)
    assert float(gamma) == pytest.approx(calc.gamma(spot), rel=1e-6, abs=1e-12)
    assert float(vega) == pytest.approx(calc.vega(t), rel=1e-6, abs=1e-9 * spot)


def deribit_rows() -> list[dict[str, str]]:
    return list(csv.DictReader(DERIBIT.open()))


def snapshot_time(rows: list[dict[str, str]]) -> float:
    """The file records no snapshot time: back it out of each mark price and IV."""
    times = []
    for r in rows:
        forward, strike = float(r["underlying_price"]), float(r["strike"])
        iv, price = float(r["mark_iv"]) / 100, float(r["mark_price"]) * forward
        call = np.array(r["type"] == "call")

        def gap(t: float, call: np.ndarray = call, forward: float = forward,
                strike: float = strike, iv: float = iv, price: float = price) -> float:
            return float(black76(call, np.array(forward), np.array(strike), np.array(t),
                                 np.array(iv))) - price
        if gap(1e-6) < 0 < gap(3.0):
            times.append(int(r["expiration_timestamp"]) / 1000 - brentq(gap, 1e-6, 3.0) * YEAR_S)
    return float(np.median(times))


def test_greeks_match_deribits_own() -> None:
    rows = deribit_rows()
    now = snapshot_time(rows)
    for r in rows:
        t = (int(r["expiration_timestamp"]) / 1000 - now) / YEAR_S
        delta, gamma, vega = black76_greeks(
            np.array(r["type"] == "call"), np.array(float(r["underlying_price"])),
            np.array(float(r["strike"])), np.array(t), np.array(float(r["mark_iv"]) / 100))
        name = r["instrument_name"]
        assert float(delta) == pytest.approx(float(r["delta"]), abs=1e-4), name
        assert float(gamma) == pytest.approx(float(r["gamma"]), abs=1e-5), name
        # Deribit quotes vega per volatility point (1%); ours is per 1.00.
        assert float(vega) / 100 == pytest.approx(float(r["vega"]), rel=1e-3, abs=1e-3), name
