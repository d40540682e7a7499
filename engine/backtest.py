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

from engine.adaptive import AdaptiveParams, RiskPath, risk_path
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
    worst_window_start: int    # the day (row of the closes) the worst 250-day window opens
    yellow_windows: int        # 250-day windows (one per day) in the yellow zone
    red_windows: int
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
                 first_day: int = 60, implied: FloatArray | None = None) -> list[Coverage]:
    """Coverage of every book over the days where every underlying in ``closes`` has
    prices (run books on different underlyings separately, see ``backtest_each``).

    Options are valued, and marked two days later, at ``implied`` (days × U, an index
    such as DVOL as a fraction; NaN where none) and else at the realised volatility,
    floored at 20%."""
    adaptive = adaptive or AdaptiveParams()
    path = risk_path(closes, adaptive)
    sigma, ranges = path.sigma, path.ranges
    h = int(adaptive.horizon_days)
    n_days = closes.shape[0]
    mm = np.full((n_days, len(books), 3), np.nan)
    loss = np.full((n_days, len(books)), np.nan)
    for d in range(first_day, n_days - h):
        if not (np.all(np.isfinite(closes[d])) and np.all(np.isfinite(closes[d + h]))
                and np.all(np.isfinite(ranges[d]))):
            continue  # not listed yet, or volatility still warming up
        proxy = np.maximum(sigma[d] * math.sqrt(365.0), 0.2)  # realised, floored
        vol = proxy if implied is None else np.where(np.isfinite(implied[d]), implied[d], proxy)
        market = day_market(closes[d], vol, path, d, params)
        day = replace(params, scan_range_by_underlying=dict(zip(underlyings, ranges[d].tolist(),
                                                                strict=True)))
        book = open_books(books, underlyings, closes[d])
        result = compute_margin(book, market, day)
        mm[d] = np.stack([result.maintenance_margin_usd, result.protocol_cross_mm_usd,
                          result.isolated_mm_usd], axis=1)
        later = open_books(books, underlyings, closes[d + h], days_passed=h, entry=closes[d])
        value_now = np.bincount(book.trader, mark_to_market(book, market), minlength=len(books))
        later_vol = vol if implied is None else np.where(np.isfinite(implied[d + h]),
                                                         implied[d + h], vol)
        later_market = replace(market, spot_usd=closes[d + h], vol=later_vol)
        value_later = np.bincount(later.trader, mark_to_market(later, later_market),
                                  minlength=len(books))
        loss[d] = value_now - value_later
    return [coverage(book, b, mm[:, b], loss[:, b]) for b, book in enumerate(books)]


def day_market(spot: FloatArray, vol: FloatArray, path: RiskPath, d: int,
               params: MarginParams) -> Market:
    """Day ``d``'s market: its realised correlations once warm, else the default."""
    market = Market.flat(spot, vol, correlation=params.default_correlation)
    rho = path.correlation[d]
    return replace(market, correlation=rho) if np.isfinite(rho).all() else market


def pair_loss_floor(a: FloatArray, b: FloatArray, horizon_days: int = 2,
                    confidence: float = 0.99) -> float:
    """The ``confidence`` quantile of the loss over ``horizon_days`` of $1 long one
    underlying and $1 short the other, the worse of the two directions, over the days
    where both have closes (numpy's linear quantile)."""
    h = horizon_days
    pnl = (a[h:] / a[:-h] - 1.0) - (b[h:] / b[:-h] - 1.0)
    pnl = pnl[np.isfinite(pnl)]
    return float(max(np.quantile(-pnl, confidence), np.quantile(pnl, confidence)))


def pair_loss_floors(closes: dict[str, FloatArray], horizon_days: int = 2,
                     confidence: float = 0.99) -> dict[str, float]:
    """``pair_loss_floor`` of every pair of ``closes`` (one calendar), keyed "A/B"."""
    names = sorted(closes)
    return {f"{a}/{b}": pair_loss_floor(closes[a], closes[b], horizon_days, confidence)
            for i, a in enumerate(names) for b in names[i + 1:]}


def backtest_each(closes: dict[str, FloatArray], books: list[BenchmarkBook],
                  params: MarginParams, adaptive: AdaptiveParams | None = None,
                  implied: dict[str, FloatArray] | None = None) -> list[Coverage]:
    """Each book on the prices of its own underlyings only (closes, and the ``implied``
    volatility indices where there are some, share one calendar)."""
    results = []
    for book in books:
        names = tuple(sorted({leg.underlying for leg in book.legs}))
        prices = np.stack([closes[n] for n in names], axis=1)
        vols = np.stack([(implied or {}).get(n, np.full(prices.shape[0], np.nan))
                         for n in names], axis=1)
        results += run_backtest(prices, names, [book], params, adaptive, implied=vols)
    return results


def coverage(book: BenchmarkBook, b: int, mm: FloatArray, loss: FloatArray) -> Coverage:
    used = np.isfinite(loss) & np.isfinite(mm[:, 0])
    breach = (loss > mm[:, 0]) & used
    days = int(used.sum())
    x = int(breach.sum())
    window = np.convolve(breach[used].astype(int), np.ones(250, dtype=int), mode="valid")
    worst = int(window.max()) if window.size else x
    start = int(np.flatnonzero(used)[int(window.argmax())]) if window.size else 0
    mean = {mode: float(np.nanmean(mm[used, i]))
            for i, mode in enumerate(("portfolio", "protocol_cross", "isolated"))}
    return Coverage(
        name=book.name, days=days, breaches=x, breach_rate=x / days if days else 0.0,
        kupiec_lr=kupiec_pof(x, days), worst_window_breaches=worst, worst_window_start=start,
        yellow_windows=int(((window >= 5) & (window <= 9)).sum()),
        red_windows=int((window >= 10).sum()),
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
