"""Adaptive scan ranges: EWMA volatility, a floor, a releasable buffer, ramped changes.

R_t = max(R_floor, k · σ̂_t · √h) with σ̂ an EWMA of daily log returns (RiskMetrics,
λ = 0.94) and h the margin period in days. Anti-procyclicality (EMIR art. 28): in calm
markets R carries a 25% buffer that is released first when volatility jumps, and any
rise is ramped: the applied range may rise at most ``max_daily_rise`` per day unless
the unbuffered range itself requires more. Correlations are the EWMA of the same
returns. Arrays are ``days × underlyings``.

``risk_path`` is the one definition the node (``streams.market_days``) and
``xmargin backtest`` both margin with: what day d's close is known, through day d.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.instruments import FloatArray


@dataclass(frozen=True)
class AdaptiveParams:
    ewma_lambda: float = 0.94
    k: float = 3.0
    horizon_days: float = 2.0
    floor: float = 0.16
    buffer: float = 0.25
    max_daily_rise: float = 0.10

    def __post_init__(self) -> None:
        if not 0.0 < self.ewma_lambda < 1.0:
            raise ValueError("ewma_lambda: must lie in (0, 1)")
        if self.k <= 0 or self.horizon_days <= 0 or not 0.0 < self.floor < 1.0:
            raise ValueError("k, horizon_days and floor must be positive (floor < 1)")


def ewma_vol(log_returns: FloatArray, lam: float, warmup_days: int = 30) -> FloatArray:
    """σ̂ known at the close of each day (uses returns up to that day), days × U.

    NaN until an underlying has ``warmup_days`` returns (it may list later than others);
    the first of them seed the variance.
    """
    days, n = log_returns.shape
    out = np.full((days, n), np.nan)
    var = np.zeros(n)
    seen = np.zeros(n, dtype=np.int64)
    for d in range(days):
        r = log_returns[d]
        ok = np.isfinite(r)
        seed = ok & (seen < warmup_days)
        var = np.where(seed, (var * seen + np.where(ok, r * r, 0.0)) / np.maximum(seen + 1, 1),
                       np.where(ok, lam * var + (1.0 - lam) * np.where(ok, r * r, 0.0), var))
        seen = seen + ok
        out[d] = np.where(seen >= warmup_days, np.sqrt(var), np.nan)
    return out


def base_range(sigma: FloatArray, p: AdaptiveParams) -> FloatArray:
    return np.minimum(np.maximum(p.floor, p.k * sigma * np.sqrt(p.horizon_days)), 0.95)


def applied_range(base: FloatArray, p: AdaptiveParams) -> FloatArray:
    """The range actually used each day: buffered, released first, ramped, never below base."""
    applied = np.full_like(base, np.nan)
    previous = np.full(base.shape[1], np.nan)
    for d in range(base.shape[0]):
        target = base[d] * (1.0 + p.buffer)
        ramped = np.minimum(target, previous * (1.0 + p.max_daily_rise))
        today = np.maximum(base[d], np.where(target < previous, target, ramped))
        # The first day with a range starts fully buffered.
        applied[d] = np.where(np.isfinite(previous), today, target)
        previous = np.where(np.isfinite(applied[d]), applied[d], previous)
    return applied


def ewma_correlation(log_returns: FloatArray, lam: float, warmup_days: int = 30
                     ) -> FloatArray:
    """Correlations known at the close of each day, days × U × U (NaN until warm).

    One EWMA covariance of the days on which every underlying has a return (so the
    matrix stays positive semi-definite: a sum of outer products with positive weights),
    seeded like ``ewma_vol`` by the mean of the first ``warmup_days``; a day on which
    any return is missing leaves it as it was. An underlying that never moved has
    correlation 0 with the others.
    """
    days, n = log_returns.shape
    out = np.full((days, n, n), np.nan)
    cov = np.zeros((n, n))
    seen = 0
    for d in range(days):
        r = log_returns[d]
        if np.isfinite(r).all():
            outer = r[:, None] * r[None, :]
            cov = ((cov * seen + outer) / (seen + 1) if seen < warmup_days
                   else lam * cov + (1.0 - lam) * outer)
            seen += 1
        if seen >= warmup_days:
            sd = np.sqrt(np.diag(cov))
            scale = sd[:, None] * sd[None, :]
            rho = np.divide(cov, scale, out=np.zeros((n, n)), where=scale > 0.0)
            rho = np.clip(rho, -1.0, 1.0)
            np.fill_diagonal(rho, 1.0)
            out[d] = rho
    return out


@dataclass(frozen=True)
class RiskPath:
    """Day by day (rows) what the margin uses: σ̂ and the applied scan range per
    underlying (days × U), and their correlations (days × U × U); NaN while warming up."""

    sigma: FloatArray
    ranges: FloatArray
    correlation: FloatArray


def risk_path(closes: FloatArray, p: AdaptiveParams) -> RiskPath:
    """The adaptive ranges and correlations from daily closes (days × U, NaN where an
    underlying has no close that day)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        log_returns = np.diff(np.log(closes), axis=0, prepend=np.nan)
    sigma = ewma_vol(log_returns, p.ewma_lambda)
    return RiskPath(sigma=sigma, ranges=applied_range(base_range(sigma, p), p),
                    correlation=ewma_correlation(log_returns, p.ewma_lambda))


def ramp(current: float, target: float, max_step: float) -> float:
    """One day's move of a parameter toward ``target``: at most ``max_step`` up, any step down.

    Raising parameters in one step has liquidated users of real protocols; lowering them
    at once only frees collateral.
    """
    return target if target <= current else min(target, current + max_step)
