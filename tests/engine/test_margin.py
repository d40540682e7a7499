"""The worked cases of margin-model.md, with the bounds stated there, and invariants."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import Book, BookError, MarginParams, Market, ParamsError, compute_margin
from engine.whatif import parse_book, results

P = MarginParams()
BTC = 60_000.0


def margin(positions: list[dict[str, Any]], correlations: dict[str, float] | None = None,
           params: MarginParams = P, **underlyings: dict[str, Any]) -> dict[str, Any]:
    market = {"underlyings": underlyings or {"BTC": {"spot": BTC, "vol": 0.5}},
              "correlations": correlations or {}}
    doc = {"market": market, "traders": [{"id": "t", "collateral_usd": 1e6,
                                          "positions": positions}]}
    parsed = parse_book(doc, params)
    return results(parsed, compute_margin(parsed.book, parsed.market, params))["traders"]["t"]


def mm(r: dict[str, Any], mode: str = "portfolio") -> float:
    return float(r["modes"][mode]["maintenance_margin"])


def perp(size: float, underlying: str = "BTC", venue: str = "perps", chain: str = "a",
         entry: float = BTC) -> dict[str, Any]:
    return {"underlying": underlying, "kind": "perp", "size": size, "entry_price": entry,
            "venue": venue, "chain": chain}


def option(kind: str, size: float, strike: float, days: float = 30,
           venue: str = "options") -> dict[str, Any]:
    return {"underlying": "BTC", "kind": kind, "size": size, "strike": strike,
            "expiry_days": days, "venue": venue, "chain": "b"}


def test_case1_spot_hedged_with_perp_leaves_only_the_add_on() -> None:
    r = margin([{"underlying": "BTC", "kind": "spot", "size": 1.0, "venue": "wallet"},
                perp(-1.0)])
    # Hedged-delta charge 1% of notional, plus the perp's funding provision.
    assert mm(r) == pytest.approx((0.01 + P.funding_provision) * BTC)
    alone = margin([perp(1.0)])
    scan = alone["greeks"]["BTC"]["worst_scenario"]
    assert scan["move"] == pytest.approx(-0.16)  # the perp alone scans at the 16% range


def test_case2_delta_hedged_short_call_saves_60_to_75_percent() -> None:
    naked = margin([option("call", -1.0, BTC)])
    hedge = -naked["greeks"]["BTC"]["delta"]
    r = margin([option("call", -1.0, BTC), perp(hedge)])
    saving = 1 - mm(r) / mm(r, "isolated")
    assert 0.60 <= saving <= 0.75
    assert 0.05 * BTC <= mm(r) <= 0.10 * BTC


def test_case3_naked_short_call_gets_no_relief() -> None:
    r = margin([option("call", -1.0, BTC)])
    assert mm(r) == pytest.approx(mm(r, "isolated"))


def test_case4_far_otm_short_call_is_charged_for_the_crash_up() -> None:
    r = margin([option("call", -1.0, 1.5 * BTC)])
    assert 0.10 * BTC <= mm(r) <= 0.20 * BTC  # ≈14% of spot from the extended moves
    assert r["greeks"]["BTC"]["worst_scenario"]["move"] > 0.16


def test_case5_debit_spread_never_above_its_maximum_loss() -> None:
    r = margin([option("call", 1.0, BTC), option("call", -1.0, 1.1 * BTC)])
    premium = r["equity"] - 1e6
    assert 0 < mm(r) <= premium + 1e-6


def test_case6_pair_requirement_falls_as_correlation_rises_to_the_historical_floor() -> None:
    # $100k a leg, long BTC / short ETH: the credit grows with ρ until an equal spread
    # would be margined below the pair's historical 99% two-day loss, then stops.
    eth = {"spot": 3000.0, "vol": 0.6}
    book = [perp(100_000 / BTC), perp(-100_000 / 3000.0, underlying="ETH", entry=3000.0)]
    rhos = (0.0, 0.5, 0.7, 0.8, 0.95, 0.99, 1.0)
    by_rho = [mm(margin(book, {"BTC/ETH": rho}, BTC={"spot": BTC, "vol": 0.5}, ETH=eth))
              for rho in rhos]
    assert all(a >= b for a, b in itertools.pairwise(by_rho))
    assert by_rho[0] > by_rho[1] > by_rho[2]  # below the cap, credit rises with ρ
    floor = P.floor_for("BTC", "ETH") * 100_000
    assert floor > 11_000
    assert min(by_rho) >= floor
    # At and above the cap ((2 · 0.16² − f²) / (2 · 0.16²) ≈ 0.755) only the floor is left.
    assert by_rho[3] == by_rho[-1]
    # The floor plus the add-ons: each leg's net delta charge, and funding on both.
    add_ons = P.net_delta_charge * 200_000 + P.funding_provision * 200_000
    assert by_rho[-1] == pytest.approx(floor + add_ons, rel=1e-9)
    # Without a floor the same book at ρ = 1 would keep only the difference of the legs.
    unfloored = MarginParams(pair_loss_floor={})
    assert mm(margin(book, {"BTC/ETH": 1.0}, unfloored, BTC={"spot": BTC, "vol": 0.5},
                     ETH=eth)) < 0.5 * floor


def test_case8_gamma_short_needs_more_than_gamma_neutral() -> None:
    short_call = option("call", -1.0, BTC)
    hedge = -margin([short_call])["greeks"]["BTC"]["delta"]
    gamma_short = margin([short_call, perp(hedge)])
    gamma_neutral = margin([short_call, option("call", 1.0, BTC, days=35)])
    assert abs(gamma_neutral["greeks"]["BTC"]["gamma"]) < abs(gamma_short["greeks"]["BTC"]["gamma"])
    assert mm(gamma_short) > mm(gamma_neutral)


def test_case9_long_on_chain_a_short_on_chain_b_nets_to_the_add_on() -> None:
    r = margin([perp(10.0, chain="a", venue="x"), perp(-10.0, chain="b", venue="y")])
    funding = P.funding_provision * 2 * 10 * BTC
    assert mm(r) == pytest.approx(0.01 * 10 * BTC + funding)
    assert mm(r, "isolated") == pytest.approx(2 * 0.18 * 10 * BTC + funding)
    assert mm(r, "protocol_cross") == pytest.approx(mm(r, "isolated"))


def test_concentration_charges_aggregate_exposure_above_the_threshold() -> None:
    small, large = mm(margin([perp(10.0)])), mm(margin([perp(200.0)]))
    assert large > 20 * small  # 12M notional: 2% more on the 7M above the 5M tier


def test_stale_price_widens_margin() -> None:
    fresh = mm(margin([perp(1.0)]))
    stale = mm(margin([perp(1.0)], BTC={"spot": BTC, "vol": 0.5, "stale": True}))
    assert stale > fresh


def test_stressed_correlation_gives_less_credit() -> None:
    book = [perp(1.0), perp(-20.0, underlying="ETH", entry=3000.0)]
    kw = {"BTC": {"spot": BTC, "vol": 0.5}, "ETH": {"spot": 3000.0, "vol": 0.6}}
    calm = mm(margin(book, {"BTC/ETH": 0.3}, **kw))
    stressed = mm(margin(book, {"BTC/ETH": 0.3}, MarginParams(correlation_stress=0.5), **kw))
    assert stressed > calm  # for a hedged pair, stress takes the hedge's credit away…
    same_way = [perp(1.0), perp(20.0, underlying="ETH", entry=3000.0)]
    assert (mm(margin(same_way, {"BTC/ETH": 0.3}, MarginParams(correlation_stress=0.5), **kw))
            > mm(margin(same_way, {"BTC/ETH": 0.3}, **kw)))  # …and the diversification


def test_results_carry_the_parameter_version() -> None:
    parsed = parse_book({"market": {"underlyings": {"BTC": {"spot": BTC}}},
                         "traders": [{"id": "x", "positions": [perp(1.0)]}]}, P)
    for version in (1, 7):
        result = compute_margin(parsed.book, parsed.market, MarginParams(version=version))
        assert result.params_version == version
        assert results(parsed, result)["params_version"] == version


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(-50, 50, allow_nan=False), st.integers(0, 3)),
                min_size=1, max_size=12))
def test_more_netting_never_costs_more(legs: list[tuple[float, int]]) -> None:
    # Without the concentration add-on, which rightly grows with aggregate exposure.
    r = margin([perp(s, venue=f"v{a}") for s, a in legs],
               params=MarginParams(concentration_charge=0.0))
    tol = 1e-6 * (1 + mm(r, "isolated"))
    assert mm(r) <= mm(r, "protocol_cross") + tol <= mm(r, "isolated") + 2 * tol
    assert mm(r) >= 0.0


@pytest.mark.parametrize("position, field", [
    ({"underlying": "DOGE", "kind": "perp", "size": 1}, "traders[t].positions[0].underlying"),
    ({"underlying": "BTC", "kind": "call", "size": 1, "strike": -5, "expiry_days": 3},
     "traders[t].positions[0].strike"),
    ({"underlying": "BTC", "kind": "put", "size": 1, "strike": 5, "expiry_days": 0},
     "traders[t].positions[0].expiry_days"),
    ({"underlying": "BTC", "kind": "swap", "size": 1}, "traders[t].positions[0].kind"),
])
def test_bad_positions_name_trader_position_and_field(position: dict[str, Any],
                                                       field: str) -> None:
    with pytest.raises(BookError) as e:
        margin([position])
    assert e.value.field == field


def test_option_without_volatility_names_the_field() -> None:
    with pytest.raises(BookError, match=r"positions\[0\]\.vol"):
        margin([option("call", 1.0, BTC)], BTC={"spot": BTC})


def test_bad_parameters_name_the_field() -> None:
    with pytest.raises(ParamsError, match="scan_steps"):
        MarginParams(scan_steps=4)
    with pytest.raises(ParamsError, match="surprise"):
        MarginParams.from_mapping({"surprise": 1})
    with pytest.raises(BookError, match="spot_usd"):
        book = Book.linear(1, ("ETH",), np.array([0]), np.array([0]), np.array([0]),
                           np.array([1.0]), np.array([1.0]), np.array([0]), np.array([1.0]))
        compute_margin(book, Market.flat(np.array([-1.0])), P)


def test_worst_scenario_points_the_way_the_book_loses() -> None:
    assert margin([perp(-1.0)])["greeks"]["BTC"]["worst_scenario"]["move"] == pytest.approx(0.16)
    assert margin([perp(1.0)])["greeks"]["BTC"]["worst_scenario"]["move"] == pytest.approx(-0.16)


def test_cash_and_carry_pays_the_basis_charge_not_a_scan() -> None:
    r = margin([{"underlying": "BTC", "kind": "spot", "size": 1.0, "venue": "wallet"},
                {"underlying": "BTC", "kind": "future", "size": -1.0, "entry_price": BTC,
                 "expiry_days": 90, "venue": "futures"}])
    # hedged delta 1% + basis 1% of the offset future: no scan loss left.
    assert mm(r) == pytest.approx(0.02 * BTC, rel=1e-6)


def test_stablecoin_holdings_pay_the_depeg_charge_in_their_own_bucket() -> None:
    usdc = {"underlying": "USDC", "kind": "spot", "size": 100_000.0, "venue": "wallet"}
    r = margin([usdc], BTC={"spot": BTC, "vol": 0.5},
               USDC={"spot": 1.0, "stablecoin": True})
    scan = 0.16 * 100_000  # the default range also applies to a stablecoin here
    assert mm(r) == pytest.approx(scan + 0.02 * 100_000 + 0.02 * 100_000)
    calm = MarginParams(scan_range_by_underlying={"USDC": 0.01})
    assert mm(margin([usdc], params=calm, BTC={"spot": BTC, "vol": 0.5},
                     USDC={"spot": 1.0, "stablecoin": True})) == pytest.approx(
        0.01 * 100_000 + 0.02 * 100_000 + 0.02 * 100_000)


def test_a_traders_figures_do_not_depend_on_who_else_is_in_the_book() -> None:
    # Attestation digests are replayed byte for byte: margining a trader alone and inside
    # a large batch must give bit-identical numbers.
    from benchmarks.bench_engine import SPOT, VOL, synthetic_book

    rng = np.random.default_rng(11)
    big = synthetic_book(10_000, rng)  # large enough for the threaded paths too
    market = Market.flat(SPOT, VOL, correlation=0.6)
    together = compute_margin(big, market, P)
    for t in (0, 1_234, 9_999):
        rows = np.flatnonzero(big.trader == t)
        alone_book = Book(
            n_traders=1, underlyings=big.underlyings, trader=np.zeros(rows.size, dtype=np.int64),
            account=big.account[rows], underlying=big.underlying[rows], kind=big.kind[rows],
            size=big.size[rows], entry_price_usd=big.entry_price_usd[rows],
            strike_usd=big.strike_usd[rows], expiry_years=big.expiry_years[rows],
            collateral_trader=np.zeros(1, dtype=np.int64),
            collateral_usd=big.collateral_usd[t : t + 1])
        alone = compute_margin(alone_book, market, P)
        for field in ("equity_usd", "maintenance_margin_usd", "isolated_mm_usd",
                      "protocol_cross_mm_usd", "free_collateral_usd"):
            assert getattr(alone, field)[0] == getattr(together, field)[t], (t, field)


def test_pairs_in_groups_agree_between_the_small_and_large_method() -> None:
    from engine.margin import same_group_pairs

    rng = np.random.default_rng(5)
    small = np.sort(rng.integers(0, 40, 200))
    large = np.concatenate([small, small.max() + 1 + np.sort(rng.integers(0, 40, 300))])
    i, j, starts = same_group_pairs(small)
    assert np.all(small[i] == small[j])
    assert i.size == sum(int(c) ** 2 for c in np.bincount(small))
    i_l, j_l, starts_l = same_group_pairs(large)  # > 256 rows: index arithmetic
    assert np.array_equal(i_l[: i.size], i) and np.array_equal(j_l[: j.size], j)
    assert np.array_equal(starts_l[: starts.size], starts)
    assert np.all(large[i_l] == large[j_l])
    assert i_l.size == sum(int(c) ** 2 for c in np.bincount(large))


def test_a_book_in_any_trader_order_is_cut_into_the_same_figures() -> None:
    # Books above CHUNK_POSITIONS are cut by trader; rows of traders interleaved in any
    # order (each trader's own rows kept in order) must give the same bits per trader.
    from benchmarks.bench_engine import SPOT, VOL, synthetic_book
    from engine.margin import CHUNK_POSITIONS

    rng = np.random.default_rng(12)
    book = synthetic_book(2 * CHUNK_POSITIONS // 10 + 7, rng)
    market = Market.flat(SPOT, VOL, correlation=0.6)
    sorted_result = compute_margin(book, market, P)
    order = np.argsort(rng.permutation(book.n_traders)[book.trader], kind="stable")
    shuffled = Book(
        n_traders=book.n_traders, underlyings=book.underlyings, trader=book.trader[order],
        account=book.account[order], underlying=book.underlying[order], kind=book.kind[order],
        size=book.size[order], entry_price_usd=book.entry_price_usd[order],
        strike_usd=book.strike_usd[order], expiry_years=book.expiry_years[order],
        collateral_trader=book.collateral_trader[::-1].copy(),
        collateral_usd=book.collateral_usd[::-1].copy())
    shuffled_result = compute_margin(shuffled, market, P)
    for field in ("equity_usd", "maintenance_margin_usd", "isolated_mm_usd",
                  "protocol_cross_mm_usd", "health", "delta", "gamma", "vega",
                  "worst_scenario"):
        assert np.array_equal(getattr(sorted_result, field), getattr(shuffled_result, field)), field


@pytest.mark.parametrize("n_traders", [2, 3, 4, 7, 16, 37])
@pytest.mark.parametrize("n_underlyings", [1, 2, 3, 5])
def test_every_trader_of_a_small_batch_gets_the_bits_it_gets_alone(
        n_traders: int, n_underlyings: int) -> None:
    # Small batches are what the stream worker sends: a reduction whose loop depends on
    # the number of rows (einsum's did, with two underlyings) would break replayed digests.
    from dataclasses import replace

    from benchmarks.bench_engine import SPOT, VOL, synthetic_book

    rng = np.random.default_rng(n_traders)
    big = synthetic_book(n_traders, rng)
    big = replace(big, underlyings=big.underlyings[:n_underlyings],
                  underlying=big.underlying % n_underlyings)
    market = Market.flat(SPOT[:n_underlyings], VOL[:n_underlyings], correlation=0.6)
    together = compute_margin(big, market, P)
    for t in range(n_traders):
        rows = np.flatnonzero(big.trader == t)
        alone = compute_margin(Book(
            n_traders=1, underlyings=big.underlyings, trader=np.zeros(rows.size, dtype=np.int64),
            account=big.account[rows], underlying=big.underlying[rows], kind=big.kind[rows],
            size=big.size[rows], entry_price_usd=big.entry_price_usd[rows],
            strike_usd=big.strike_usd[rows], expiry_years=big.expiry_years[rows],
            collateral_trader=np.zeros(1, dtype=np.int64),
            collateral_usd=big.collateral_usd[t : t + 1]), market, P)
        for field in ("equity_usd", "maintenance_margin_usd", "isolated_mm_usd",
                      "protocol_cross_mm_usd", "health", "free_collateral_usd"):
            assert getattr(alone, field)[0] == getattr(together, field)[t], (t, field)
