"""Engine speed and memory on a synthetic book, against a QuantLib revaluation loop.

100,000 traders × 10 positions over 5 underlyings (40% options, the rest spot, perps,
dated futures and lending), margined under all three modes at once. In the same run,
a straightforward QuantLib loop (one ``BlackCalculator`` per option per scenario, a
multiply per linear position per scenario) revalues a sample of the same positions;
its per-revaluation cost × positions × scenarios gives ``quantlib_equivalent_s``.

Then ``simulate``: the p50 / p99 of ``POST /v1/simulate`` over 10,000 requests from a
second process on loopback, beside ``GET /healthz`` on the same server
(``benchmarks.simulate_latency``).

Prints one JSON object. Run: ``.venv/bin/python -m benchmarks.bench_engine``.
"""

from __future__ import annotations

import json
import resource
import time

import numpy as np
import QuantLib as ql

from benchmarks import simulate_latency
from engine import Book, Kind, MarginParams, Market, compute_margin
from engine.scenarios import build_scenarios, scan_ranges, shocked_vol

N_TRADERS = 100_000
PER_TRADER = 10
UNDERLYINGS = ("BTC", "ETH", "SOL", "AVAX", "LINK")
SPOT = np.array([60_000.0, 3_000.0, 150.0, 35.0, 15.0])
VOL = np.array([0.5, 0.6, 0.8, 0.9, 0.85])
QL_SAMPLE = 2_000


def synthetic_book(n_traders: int, rng: np.random.Generator) -> Book:
    n = n_traders * PER_TRADER
    kinds = rng.choice([Kind.SPOT, Kind.PERP, Kind.FUTURE, Kind.CALL, Kind.PUT, Kind.SUPPLY,
                        Kind.BORROW], size=n, p=[0.1, 0.3, 0.1, 0.2, 0.2, 0.05, 0.05])
    underlying = rng.integers(0, len(UNDERLYINGS), n)
    spot = SPOT[underlying]
    size = rng.normal(0, 1, n) * 10_000 / spot
    size = np.where(np.isin(kinds, (Kind.SUPPLY, Kind.BORROW)), np.abs(size), size)
    dated = np.isin(kinds, (Kind.FUTURE, Kind.CALL, Kind.PUT))
    return Book(
        n_traders=n_traders, underlyings=UNDERLYINGS,
        trader=np.repeat(np.arange(n_traders), PER_TRADER),
        account=rng.integers(0, 8, n), underlying=underlying, kind=kinds.astype(np.int64),
        size=size, entry_price_usd=spot * rng.uniform(0.9, 1.1, n),
        strike_usd=np.where(dated, spot * rng.uniform(0.7, 1.3, n), 0.0),
        expiry_years=np.where(dated, rng.uniform(2, 180, n) / 365, 0.0),
        collateral_trader=np.arange(n_traders),
        collateral_usd=rng.uniform(5_000, 50_000, n_traders),
    )


def quantlib_cost_per_revaluation(book: Book, market: Market, params: MarginParams,
                                  rng: np.random.Generator) -> float:
    sc = build_scenarios(scan_ranges(book.underlyings, None, params), params)
    rows = rng.choice(book.trader.size, QL_SAMPLE, replace=False)
    start = time.perf_counter()
    total = 0.0
    for p in rows:
        u = book.underlying[p]
        s0 = market.spot_usd[u]
        for s in range(sc.n):
            shocked = s0 * (1 + sc.move[u, s])
            if book.kind[p] in (Kind.CALL, Kind.PUT):
                t = book.expiry_years[p]
                vol = shocked_vol(market.vol[u:u + 1], np.array([t]), int(sc.vol_shock[s]), params)
                payoff = ql.PlainVanillaPayoff(
                    ql.Option.Call if book.kind[p] == Kind.CALL else ql.Option.Put,
                    float(book.strike_usd[p]))
                calc = ql.BlackCalculator(payoff, float(shocked), float(vol[0] * np.sqrt(t)), 1.0)
                total += book.size[p] * calc.value()
            else:
                total += book.size[p] * (shocked - s0)
    assert np.isfinite(total)
    return (time.perf_counter() - start) / (QL_SAMPLE * sc.n)


def main() -> None:
    rng = np.random.default_rng(7)
    params = MarginParams()
    market = Market.flat(SPOT, VOL, correlation=0.6)
    book = synthetic_book(N_TRADERS, rng)
    compute_margin(synthetic_book(100, rng), market, params)  # warm imports and caches
    start = time.perf_counter()
    result = compute_margin(book, market, params)
    full_s = time.perf_counter() - start
    assert np.all(np.isfinite(result.maintenance_margin_usd))
    # Single trader: the median over 20 different one-trader books, 200 recomputes each.
    reps, per_book = 200, []
    for _ in range(20):
        one = synthetic_book(1, rng)
        start = time.perf_counter()
        for _ in range(reps):
            compute_margin(one, market, params)
        per_book.append((time.perf_counter() - start) / reps * 1e6)
    single_us = float(np.median(per_book))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n_scenarios = result.scenarios.n
    per_reval = quantlib_cost_per_revaluation(book, market, params, rng)
    ql_equivalent = per_reval * book.trader.size * n_scenarios
    print(json.dumps({
        "traders": N_TRADERS, "positions": int(book.trader.size),
        "option_share": round(float(book.is_option.mean()), 3), "scenarios": n_scenarios,
        "full_book_s": round(full_s, 3), "single_trader_us": round(single_us, 1),
        "single_trader_us_range": [round(min(per_book), 1), round(max(per_book), 1)],
        "peak_rss_mb": round(peak_mb, 1),
        "quantlib_equivalent_s": round(ql_equivalent, 1),
        "ratio": round(ql_equivalent / full_s, 1),
        # POST /v1/simulate from a second process (``benchmarks.simulate_latency``).
        "simulate": simulate_latency.measure(),
    }))


if __name__ == "__main__":
    main()
