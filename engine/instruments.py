"""Books and market data as arrays.

A ``Book`` holds the positions of T traders flattened into P rows (axis ``positions``);
``trader``, ``account`` (a chain-and-venue index) and ``underlying`` are indices. A
``Market`` holds one row per underlying (axis ``underlyings``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from engine.errors import BookError

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]


class Kind(enum.IntEnum):
    """What a position row is. Sizes are signed units of the underlying, except that
    ``BORROW`` (a liability) and ``SUPPLY`` (an asset) are given as positive amounts."""

    SPOT = 0
    PERP = 1
    FUTURE = 2
    CALL = 3
    PUT = 4
    SUPPLY = 5
    BORROW = 6


OPTION_KINDS = (Kind.CALL, Kind.PUT)
DATED_KINDS = (Kind.FUTURE, Kind.CALL, Kind.PUT)


@dataclass(frozen=True)
class Book:
    n_traders: int
    underlyings: tuple[str, ...]
    trader: IntArray
    account: IntArray
    underlying: IntArray
    kind: IntArray
    size: FloatArray
    entry_price_usd: FloatArray
    strike_usd: FloatArray
    expiry_years: FloatArray
    collateral_trader: IntArray
    collateral_usd: FloatArray

    def __post_init__(self) -> None:
        n = self.trader.shape[0]
        for name in ("account", "underlying", "kind", "size", "entry_price_usd", "strike_usd",
                     "expiry_years"):
            if getattr(self, name).shape != (n,):
                raise BookError(name, f"expected shape ({n},)")
        if self.collateral_trader.shape != self.collateral_usd.shape:
            raise BookError("collateral_usd", "must match collateral_trader in shape")
        if n == 0:
            return
        if self.trader.min() < 0 or self.trader.max() >= self.n_traders:
            raise BookError("trader", "index out of range")
        if self.underlying.min() < 0 or self.underlying.max() >= len(self.underlyings):
            raise BookError("underlying", "index out of range")
        if self.kind.min() < 0 or self.kind.max() > max(Kind):
            raise BookError("kind", "unknown instrument kind")
        if not np.all(np.isfinite(self.size)):
            raise BookError("size", "must be finite")
        options = self.is_option
        if np.any(options & (self.strike_usd <= 0)):
            raise BookError("strike_usd", "options need a positive strike")
        # DATED_KINDS by comparison: np.isin costs tens of µs on a one-trader book.
        dated = options | (self.kind == Kind.FUTURE)
        if np.any(dated & (self.expiry_years <= 0)):
            raise BookError("expiry_years", "dated instruments must not be expired")

    @property
    def is_option(self) -> BoolArray:
        return (self.kind == Kind.CALL) | (self.kind == Kind.PUT)

    @staticmethod
    def linear(n_traders: int, underlyings: tuple[str, ...], trader: IntArray,
               account: IntArray, underlying: IntArray, size: FloatArray,
               entry_price_usd: FloatArray, collateral_trader: IntArray,
               collateral_usd: FloatArray) -> Book:
        """A book of perpetual futures only."""
        zeros = np.zeros(trader.shape[0])
        return Book(n_traders, underlyings, trader, account, underlying,
                    np.full(trader.shape[0], Kind.PERP, dtype=np.int64), size, entry_price_usd,
                    zeros, zeros.copy(), collateral_trader, collateral_usd)


# Eigenvalues this far below zero are rounding, not a matrix that is not PSD.
PSD_TOLERANCE = 1e-9


@lru_cache(maxsize=256)
def smallest_eigenvalue(matrix: bytes, n: int) -> float:
    """The smallest eigenvalue of a symmetric n × n matrix (float64 bytes): the same few
    correlation matrices come back on every recompute."""
    if n == 0:
        return 0.0
    return float(np.linalg.eigvalsh(np.frombuffer(matrix).reshape(n, n))[0])


@dataclass(frozen=True)
class Market:
    """Spot, implied volatility, staleness (of the price, of the volatility) and
    correlation per underlying."""

    spot_usd: FloatArray
    vol: FloatArray
    correlation: FloatArray
    rate: float = 0.0
    stale: BoolArray | None = None
    stablecoin: BoolArray | None = None
    vol_stale: BoolArray | None = None  # widens the vega shocks (``shocked_vols``)

    def validate(self, n_underlyings: int) -> None:
        # Checked on every recompute, so as few array calls as the checks allow.
        spot, vol, rho = self.spot_usd, self.vol, self.correlation
        if spot.shape != (n_underlyings,):
            raise BookError("spot_usd", f"expected one price per underlying ({n_underlyings})")
        if not (np.isfinite(spot) & (spot > 0)).all():
            raise BookError("spot_usd", "prices must be finite and positive")
        if vol.shape != (n_underlyings,) or not (vol >= 0).all():
            raise BookError("vol", "one non-negative volatility per underlying")
        if rho.shape != (n_underlyings, n_underlyings):
            raise BookError("correlation", "must be underlyings × underlyings")
        if not ((rho == rho.T) & (np.abs(rho) <= 1)).all():
            raise BookError("correlation", "must be symmetric with entries in [−1, 1]")
        smallest = smallest_eigenvalue(rho.tobytes(), n_underlyings)
        if smallest < -PSD_TOLERANCE:
            # Not a correlation matrix: Σ ρₖₗ WSₖ WSₗ could go negative and the scan
            # vanish. Refused rather than repaired, so that no figure rests on a matrix
            # nobody chose.
            raise BookError("correlation", "must be positive semi-definite (smallest "
                                           f"eigenvalue {smallest:.4g})")

    @staticmethod
    def flat(spot_usd: FloatArray, vol: FloatArray | None = None,
             correlation: float = 0.5) -> Market:
        n = spot_usd.shape[0]
        rho = np.full((n, n), correlation)
        np.fill_diagonal(rho, 1.0)
        return Market(spot_usd=spot_usd, vol=vol if vol is not None else np.full(n, 0.5),
                      correlation=rho)
