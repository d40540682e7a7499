"""Linear books on the ±16% scan: worked numbers and invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import Book, MarginParams, compute_margin
from engine.margin import BookError
from engine.params import ParamsError


def book(sizes: list[float], accounts: list[int], collateral: float = 10_000.0,
         entry: float = 3000.0) -> Book:
    n = len(sizes)
    return Book(
        n_traders=1, underlyings=("ETH",), trader=np.zeros(n, dtype=np.int64),
        account=np.array(accounts, dtype=np.int64), underlying=np.zeros(n, dtype=np.int64),
        size=np.array(sizes, dtype=np.float64), entry_price_usd=np.full(n, entry),
        collateral_trader=np.array([0]), collateral_usd=np.array([collateral]),
    )


SPOT = np.array([3000.0])


def test_single_perp_scans_at_the_range_plus_net_delta_charge() -> None:
    r = compute_margin(book([10.0], [0]), SPOT, MarginParams())
    # 10 ETH × 3000 = 30,000 notional: 16% scan loss + 2% net delta charge.
    assert r.maintenance_margin_usd[0] == pytest.approx(30_000 * 0.18)
    assert r.initial_margin_usd[0] == pytest.approx(1.25 * 30_000 * 0.18)


def test_long_on_chain_a_short_on_chain_b_nets_to_the_add_on_only() -> None:
    # Worked case 9: portfolio margin leaves the 1% hedged-delta charge; isolated and
    # protocol-cross (different venues) margin both legs in full.
    r = compute_margin(book([10.0, -10.0], [0, 1]), SPOT, MarginParams())
    assert r.maintenance_margin_usd[0] == pytest.approx(300.0)
    assert r.isolated_mm_usd[0] == pytest.approx(2 * 5400.0)
    assert r.protocol_cross_mm_usd[0] == pytest.approx(2 * 5400.0)
    assert r.delta[0, 0] == 0.0


def test_same_venue_hedge_nets_under_protocol_cross_too() -> None:
    r = compute_margin(book([10.0, -10.0], [0, 0]), SPOT, MarginParams())
    assert r.protocol_cross_mm_usd[0] == pytest.approx(300.0)


def test_equity_includes_unrealised_pnl_and_health_follows() -> None:
    r = compute_margin(book([10.0], [0], collateral=1000.0, entry=2900.0), SPOT, MarginParams())
    assert r.equity_usd[0] == pytest.approx(1000.0 + 10 * 100.0)
    assert r.health[0] == pytest.approx(2000.0 / 5400.0)
    assert r.free_collateral_usd[0] == 0.0


def test_results_carry_the_parameter_version() -> None:
    assert compute_margin(book([1.0], [0]), SPOT, MarginParams(version=7)).params_version == 7


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(-100, 100, allow_nan=False), st.integers(0, 3)),
                min_size=1, max_size=12))
def test_more_netting_never_costs_more(legs: list[tuple[float, int]]) -> None:
    sizes, accounts = [s for s, _ in legs], [a for _, a in legs]
    r = compute_margin(book(sizes, accounts), SPOT, MarginParams())
    tol = 1e-6 * (1 + r.isolated_mm_usd[0])
    assert r.maintenance_margin_usd[0] <= r.protocol_cross_mm_usd[0] + tol
    assert r.protocol_cross_mm_usd[0] <= r.isolated_mm_usd[0] + tol
    assert r.maintenance_margin_usd[0] >= 0.0


def test_bad_inputs_name_the_field() -> None:
    with pytest.raises(BookError, match="spot_usd"):
        compute_margin(book([1.0], [0]), np.array([-1.0]), MarginParams())
    with pytest.raises(ParamsError, match="scan_steps"):
        MarginParams(scan_steps=4)
    with pytest.raises(ParamsError, match="scan_range"):
        MarginParams(scan_range=1.5)
