"""Daily closes folded from the price log, and the adaptive ranges and correlations the
node margins with (``engine.adaptive.risk_path``, the same as ``xmargin backtest``).

A day is a UTC day number (``observed_at // 86400``). An asset's day closes at the first
record of that asset in the log observed on a later day (the price topic is keyed by
asset, so one partition orders all of an asset's records); its close is the oracle
median (``streams.oracle.aggregate``) at the day's last second, of the quotes held
before that record. A record that reaches the log after its day closed moves the quotes,
never a close: every reader of the log, a worker following it or an auditor replaying
it, finds the same closes, and a close once made never changes.

An attestation margined with them names its ``RiskBasis``: the newest day closed for
every market the trader holds, and the ranges and correlations of that day. Until an
asset has ``warmup_days`` returns it keeps the static range of the parameters, and a
pair without enough common days keeps the default correlation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from engine import MarginParams
from engine.adaptive import AdaptiveParams, risk_path
from engine.instruments import FloatArray
from streams.oracle import Quotes, aggregate

if TYPE_CHECKING:
    from streams.price_view import PriceView
from wire.records import PairCorrelation, PriceUpdate, RiskBasis, ScanRange

DAY_S = 86_400
WAD = 10**18


@dataclass(frozen=True, slots=True)
class AssetDays:
    open_day: int  # the day of the newest record, not closed yet
    closes: tuple[tuple[int, int], ...] = ()  # (day, close in wei), oldest first


@dataclass(frozen=True)
class Basis:
    """What margining a set of markets uses on one day: the parameters with that day's
    ranges in, the correlation matrix (markets order) and the record naming both."""

    params: MarginParams
    correlation: FloatArray | None
    record: RiskBasis


class MarketDays:
    """The closes of every asset, folded one price record at a time (``apply``)."""

    def __init__(self, staleness_s: int, max_deviation: float,
                 adaptive: AdaptiveParams | None = None) -> None:
        self.staleness_s = staleness_s
        self.max_deviation = max_deviation
        self.adaptive = adaptive or AdaptiveParams()
        self.assets: dict[str, AssetDays] = {}
        # Closes at or before a day never change: what they give is kept.
        self._bases: dict[tuple[tuple[str, ...], int, int], Basis | None] = {}

    def apply(self, quotes_before: Quotes, update: PriceUpdate) -> None:
        """Fold ``update`` (a record that changed the quotes), given the quotes before it."""
        day = update.observed_at // DAY_S
        held = self.assets.get(update.asset)
        if held is None:
            self.assets[update.asset] = AssetDays(day)
            return
        if day <= held.open_day:
            return
        close = aggregate(update.asset, quotes_before[update.asset],
                          (held.open_day + 1) * DAY_S - 1, self.staleness_s,
                          self.max_deviation).price_wad
        self.assets[update.asset] = AssetDays(day, (*held.closes, (held.open_day, close)))

    def closed_through(self, markets: Sequence[str]) -> int | None:
        """The newest day closed for every one of ``markets`` (``None``: not one yet)."""
        last = [self.assets[m].closes[-1][0] if m in self.assets and self.assets[m].closes
                else None for m in markets]
        return None if not last or None in last else min(d for d in last if d is not None)

    def basis(self, markets: tuple[str, ...], params: MarginParams,
              day: int | None = None) -> Basis | None:
        """The basis of ``markets`` on ``day`` (default: the newest closed for all), or
        ``None`` while none of them is warm (nothing adaptive to use) or ``day`` is not
        closed for all of them."""
        through = self.closed_through(markets)
        if through is None or (day is not None and day > through):
            return None
        day = through if day is None else day
        key = (markets, day, id(params))
        if key not in self._bases:
            self._bases[key] = self._basis(markets, params, day)
        return self._bases[key]

    def _basis(self, markets: tuple[str, ...], params: MarginParams, day: int) -> Basis | None:
        closes = self.closes(markets, day)
        if closes is None:
            return None
        path = risk_path(closes, self.adaptive)
        ranges = path.ranges[-1]
        rho = path.correlation[-1]
        warm = {m: float(r) for m, r in zip(markets, ranges, strict=True) if np.isfinite(r)}
        correlated = len(markets) > 1 and bool(np.isfinite(rho).all())
        if not warm and not correlated:
            return None
        used = {**params.scan_range_by_underlying, **warm}
        n = len(markets)
        record = RiskBasis(
            day=day,
            ranges=tuple(ScanRange(asset=m, range=used.get(m, params.scan_range))
                         for m in markets),
            correlations=tuple(PairCorrelation(a=markets[i], b=markets[j],
                                               rho=float(rho[i, j]) if correlated
                                               else params.default_correlation)
                               for i in range(n) for j in range(i + 1, n)))
        return Basis(params=replace(params, scan_range_by_underlying=used),
                     correlation=rho if correlated else None, record=record)

    def closes(self, markets: tuple[str, ...], day: int) -> FloatArray | None:
        """Closes (days × markets, NaN where an asset has none) from the first close of
        any of ``markets`` up to ``day``."""
        held = [[(d, c) for d, c in self.assets[m].closes if d <= day] for m in markets]
        first = min((c[0][0] for c in held if c), default=None)
        if first is None:
            return None
        out = np.full((day - first + 1, len(markets)), np.nan)
        for j, series in enumerate(held):
            for d, c in series:
                out[d - first, j] = c / WAD
        return out


def market_block(view: PriceView, params: MarginParams) -> dict[str, Any]:
    """The what-if market (``engine.whatif``) the view margins with now: every asset's
    oracle price at its newest observation, and the basis of all of them (ranges and
    correlations, or the parameters' own while not warm)."""
    from streams.oracle import implied_vols
    from streams.risk import DEFAULT_IMPLIED_VOL

    markets = tuple(sorted(view.quotes))
    as_of = max(q.observed_at for sources in view.quotes.values() for q in sources.values())
    basis = view.days.basis(markets, params)
    ranges = {r.asset: r.range for r in basis.record.ranges} if basis else {}
    implied = implied_vols(markets, view.vol_quotes, as_of, view.settings.vol_staleness_s,
                           view.settings.max_vol_deviation)
    underlyings = {}
    for m in markets:
        price = aggregate(m, view.quotes[m], as_of, view.settings.price_staleness_s,
                          view.settings.max_price_deviation)
        underlyings[m] = {"spot": price.price_wad / WAD, "stale": price.degraded,
                          "vol": implied[m].price_wad / WAD if m in implied
                          else view.settings.implied_vol.get(m, DEFAULT_IMPLIED_VOL),
                          "range": ranges.get(m, params.range_for(m))}
    return {"day": basis.record.day if basis else None, "as_of": as_of,
            "underlyings": underlyings,
            "correlations": {f"{c.a}/{c.b}": c.rho for c in basis.record.correlations}
            if basis else {}}
