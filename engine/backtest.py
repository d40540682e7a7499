"""Backtesting margin coverage on price history (EMIR: 99% over the margin period).

For each day d, a benchmark book is opened at the close, margined with that day's
adaptive ranges (``engine.adaptive``), and marked again h days later; a breach is a
loss over h days above the maintenance margin. Coverage statistics: the breach rate,
Kupiec's proportion-of-failures likelihood ratio, and the Basel traffic light over the
worst 250-day window. Arrays are ``days × underlyings``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from engine.adaptive import AdaptiveParams, applied_range, base_range, ewma_vol
from engine.instruments import Book, FloatArray, Kind, Market
from engine.margin import compute_margin, mark_to_market
from engine.params import MarginParams

KUPIEC_CRITICAL = 3.841  # χ²(1) at 95%


@dataclass(frozen=True)
class Leg:
    underlying: str
    kind: Kind
    notional_usd: float        # signed; units = notional / spot at the open
    account: int = 0
    strike_moneyness: float = 1.0
    expiry_days: float = 0.0


@dataclass(frozen=True)
class BenchmarkBook:
    name: str
    legs: tuple[Leg, ...]
    hedged: bool = False


@dataclass(frozen=True)
class Coverage:
    name: str
    days: int
    breaches: int
    breach_rate: float
    kupiec_lr: float
    worst_window_breaches: int
    traffic_light: str
    mean_mm_usd: dict[str, float]
    saving_vs_isolated: float
    mm_usd: FloatArray
    loss_usd: FloatArray


def kupiec_pof(breaches: int, days: int, p: float = 0.01) -> float:
    """Kupiec's POF likelihood ratio, one-sided: only more breaches than p·days reject
    (a margin that covers more than 99% is conservative, not wrong)."""
    if days == 0 or breaches <= p * days:
        return 0.0
    rate = breaches / days
    log_null = (days - breaches) * math.log(1 - p) + breaches * math.log(p)
    log_alt = (days - breaches) * math.log(1 - rate) + breaches * math.log(rate) if rate < 1 \
        else 0.0
    return -2.0 * (log_null - log_alt)


def traffic_light(breaches_in_250: int) -> str:
    """Basel zones for 250 days at 99%: 0–4 green, 5–9 yellow, 10+ red."""
    return "green" if breaches_in_250 <= 4 else "yellow" if breaches_in_250 <= 9 else "red"


def open_books(books: list[BenchmarkBook], underlyings: tuple[str, ...], spot: FloatArray,
               days_passed: float = 0.0, entry: FloatArray | None = None) -> Book:
    """All benchmark books as the traders of one Book, opened at ``entry`` prices and
    aged by ``days_passed``."""
    entry = spot if entry is None else entry
    rows = [(b, leg) for b, book in enumerate(books) for leg in book.legs]
    u = np.array([underlyings.index(leg.underlying) for _, leg in rows], dtype=np.int64)
    open_price = entry[u]
    kind = np.array([leg.kind for _, leg in rows], dtype=np.int64)
    dated = np.isin(kind, (Kind.FUTURE, Kind.CALL, Kind.PUT))
    size = np.array([leg.notional_usd for _, leg in rows]) / open_price
    size = np.where(np.isin(kind, (Kind.SUPPLY, Kind.BORROW)), np.abs(size), size)
    expiry = np.array([leg.expiry_days for _, leg in rows]) - days_passed
    return Book(
        n_traders=len(books), underlyings=underlyings,
        trader=np.array([b for b, _ in rows], dtype=np.int64),
        account=np.array([leg.account for _, leg in rows], dtype=np.int64),
        underlying=u, kind=kind, size=size, entry_price_usd=open_price,
        strike_usd=np.array([leg.strike_moneyness for _, leg in rows]) * open_price,
        expiry_years=np.where(dated, np.maximum(expiry, 1e-6) / 365.0, 0.0),
        collateral_trader=np.zeros(0, dtype=np.int64), collateral_usd=np.zeros(0),
    )


def run_backtest(closes: FloatArray, underlyings: tuple[str, ...], books: list[BenchmarkBook],
                 params: MarginParams, adaptive: AdaptiveParams | None = None,
                 first_day: int = 60) -> list[Coverage]:
    """Coverage of every book over the days where every underlying in ``closes`` has
    prices (run books on different underlyings separately, see ``backtest_each``)."""
    adaptive = adaptive or AdaptiveParams()
    log_returns = np.diff(np.log(closes), axis=0, prepend=np.nan)
    sigma = ewma_vol(log_returns, adaptive.ewma_lambda)
    ranges = applied_range(base_range(sigma, adaptive), adaptive)
    h = int(adaptive.horizon_days)
    n_days = closes.shape[0]
    mm = np.full((n_days, len(books), 3), np.nan)
    loss = np.full((n_days, len(books)), np.nan)
    for d in range(first_day, n_days - h):
        if not (np.all(np.isfinite(closes[d])) and np.all(np.isfinite(closes[d + h]))
                and np.all(np.isfinite(ranges[d]))):
            continue  # not listed yet, or volatility still warming up
        vol = np.maximum(sigma[d] * math.sqrt(365.0), 0.2)  # implied proxy: realised, floored
        market = Market.flat(closes[d], vol, correlation=params.default_correlation)
        day = replace(params, scan_range_by_underlying=dict(zip(underlyings, ranges[d].tolist(),
                                                                strict=True)))
        book = open_books(books, underlyings, closes[d])
        result = compute_margin(book, market, day)
        mm[d] = np.stack([result.maintenance_margin_usd, result.protocol_cross_mm_usd,
                          result.isolated_mm_usd], axis=1)
        later = open_books(books, underlyings, closes[d + h], days_passed=h, entry=closes[d])
        value_now = np.bincount(book.trader, mark_to_market(book, market), minlength=len(books))
        later_market = Market.flat(closes[d + h], vol, correlation=params.default_correlation)
        value_later = np.bincount(later.trader, mark_to_market(later, later_market),
                                  minlength=len(books))
        loss[d] = value_now - value_later
    return [coverage(book, b, mm[:, b], loss[:, b]) for b, book in enumerate(books)]


def backtest_each(closes: dict[str, FloatArray], books: list[BenchmarkBook],
                  params: MarginParams, adaptive: AdaptiveParams | None = None) -> list[Coverage]:
    """Each book on the prices of its own underlyings only (closes share one calendar)."""
    results = []
    for book in books:
        names = tuple(sorted({leg.underlying for leg in book.legs}))
        prices = np.stack([closes[n] for n in names], axis=1)
        results += run_backtest(prices, names, [book], params, adaptive)
    return results


def coverage(book: BenchmarkBook, b: int, mm: FloatArray, loss: FloatArray) -> Coverage:
    used = np.isfinite(loss) & np.isfinite(mm[:, 0])
    breach = (loss > mm[:, 0]) & used
    days = int(used.sum())
    x = int(breach.sum())
    window = np.convolve(breach[used].astype(int), np.ones(250, dtype=int), mode="valid")
    worst = int(window.max()) if window.size else x
    mean = {mode: float(np.nanmean(mm[used, i]))
            for i, mode in enumerate(("portfolio", "protocol_cross", "isolated"))}
    return Coverage(
        name=book.name, days=days, breaches=x, breach_rate=x / days if days else 0.0,
        kupiec_lr=kupiec_pof(x, days), worst_window_breaches=worst,
        traffic_light=traffic_light(worst), mean_mm_usd=mean,
        saving_vs_isolated=1.0 - mean["portfolio"] / mean["isolated"],
        mm_usd=mm[:, 0], loss_usd=loss,
    )


NOTIONAL = 100_000.0

BENCHMARK_BOOKS = [
    BenchmarkBook("naked-long-btc", (Leg("BTC", Kind.PERP, NOTIONAL),)),
    BenchmarkBook("naked-short-eth", (Leg("ETH", Kind.PERP, -NOTIONAL),)),
    BenchmarkBook("naked-long-sol", (Leg("SOL", Kind.PERP, NOTIONAL),)),
    BenchmarkBook("hedged-spot-perp-btc", (Leg("BTC", Kind.SPOT, NOTIONAL, 0),
                                           Leg("BTC", Kind.PERP, -NOTIONAL, 1)), hedged=True),
    BenchmarkBook("hedged-cross-chain-eth", (Leg("ETH", Kind.PERP, NOTIONAL, 0),
                                             Leg("ETH", Kind.PERP, -NOTIONAL, 1)), hedged=True),
    BenchmarkBook("cash-and-carry-btc", (Leg("BTC", Kind.SPOT, NOTIONAL, 0),
                                         Leg("BTC", Kind.FUTURE, -NOTIONAL, 1, 1.0, 90.0)),
                  hedged=True),
    BenchmarkBook("call-spread-btc", (Leg("BTC", Kind.CALL, NOTIONAL, 0, 1.0, 30.0),
                                      Leg("BTC", Kind.CALL, -NOTIONAL, 0, 1.1, 30.0))),
    BenchmarkBook("short-strangle-eth", (Leg("ETH", Kind.PUT, -NOTIONAL, 0, 0.85, 30.0),
                                         Leg("ETH", Kind.CALL, -NOTIONAL, 0, 1.15, 30.0))),
    BenchmarkBook("pair-btc-eth", (Leg("BTC", Kind.PERP, NOTIONAL, 0),
                                   Leg("ETH", Kind.PERP, -NOTIONAL, 1))),
]
