"""Scenario margin for linear books under three offset modes.

Axes: ``positions`` (P rows, one per position), ``scenarios`` (S price moves),
``groups`` (G offset groups), ``traders`` (T). A mode is only a choice of offset group:

======================  ===============================================
isolated                every position alone
protocol_cross          (trader, account, underlying): nets inside one venue
portfolio               (trader, underlying): nets across venues and chains
======================  ===============================================

Per group, the requirement is the worst scan loss plus the minimum delta charge
``(net_charge · |net delta| + hedged_charge · hedged delta) · S``; a trader's MM is the
sum over their groups (correlation credit across underlyings comes later).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from engine.params import MarginParams

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


class BookError(ValueError):
    """The book's arrays are inconsistent; ``field`` names the offending array."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class Book:
    """Positions and collateral of T traders, flattened.

    ``trader``, ``account``, ``underlying`` are indices; ``account`` identifies a
    (chain, venue) pair. Sizes are in units of the underlying (signed), prices in USD.
    ``collateral_usd`` has one entry per (trader, account) collateral row.
    """

    n_traders: int
    underlyings: tuple[str, ...]
    trader: IntArray
    account: IntArray
    underlying: IntArray
    size: FloatArray
    entry_price_usd: FloatArray
    collateral_trader: IntArray
    collateral_usd: FloatArray

    def __post_init__(self) -> None:
        n = self.trader.shape[0]
        for name in ("account", "underlying", "size", "entry_price_usd"):
            if getattr(self, name).shape != (n,):
                raise BookError(name, f"expected shape ({n},)")
        if self.collateral_trader.shape != self.collateral_usd.shape:
            raise BookError("collateral_usd", "must match collateral_trader in shape")
        if n and (self.trader.min() < 0 or self.trader.max() >= self.n_traders):
            raise BookError("trader", "index out of range")
        if n and (self.underlying.min() < 0 or self.underlying.max() >= len(self.underlyings)):
            raise BookError("underlying", "index out of range")


@dataclass(frozen=True)
class MarginResult:
    """Per-trader results (arrays of length T); ``delta`` is traders × underlyings in units."""

    params_version: int
    equity_usd: FloatArray
    maintenance_margin_usd: FloatArray
    initial_margin_usd: FloatArray
    health: FloatArray
    free_collateral_usd: FloatArray
    delta: FloatArray
    isolated_mm_usd: FloatArray
    protocol_cross_mm_usd: FloatArray


def scan_moves(book: Book, params: MarginParams) -> FloatArray:
    """Relative price moves, underlyings × scenarios: ``linspace(-R, R, steps)`` per underlying."""
    ranges = np.array([params.range_for(u) for u in book.underlyings], dtype=np.float64)
    unit = np.linspace(-1.0, 1.0, params.scan_steps)
    return ranges[:, None] * unit[None, :]


def group_requirement(
    group: IntArray, n_groups: int, pnl: FloatArray, delta_usd: FloatArray, params: MarginParams
) -> FloatArray:
    """Requirement per group: worst scan loss plus the minimum delta charge.

    ``pnl`` is positions × scenarios, ``delta_usd`` the positions' dollar deltas.
    """
    group_pnl = np.zeros((n_groups, pnl.shape[1]))
    np.add.at(group_pnl, group, pnl)
    scan_loss = np.maximum(0.0, -group_pnl.min(axis=1))
    long_usd = np.bincount(group, np.maximum(delta_usd, 0.0), minlength=n_groups)
    short_usd = np.bincount(group, np.maximum(-delta_usd, 0.0), minlength=n_groups)
    net = np.abs(long_usd - short_usd)
    hedged = np.minimum(long_usd, short_usd)
    return scan_loss + params.net_delta_charge * net + params.hedged_delta_charge * hedged


def mode_margin(
    book: Book, key_columns: tuple[IntArray, ...], pnl: FloatArray, delta_usd: FloatArray,
    params: MarginParams,
) -> FloatArray:
    """Sum of group requirements per trader, grouping positions by ``key_columns``."""
    if book.trader.size == 0:
        return np.zeros(book.n_traders)
    keys = np.stack(key_columns, axis=1)
    unique_keys, group = np.unique(keys, axis=0, return_inverse=True)
    group = group.reshape(-1)
    requirement = group_requirement(group, unique_keys.shape[0], pnl, delta_usd, params)
    return sum_by_trader(unique_keys[:, 0], requirement, book.n_traders)


def sum_by_trader(trader: IntArray, values: FloatArray, n_traders: int) -> FloatArray:
    """Per-trader sums of ``values`` (length T, zero for traders with no rows)."""
    return np.bincount(trader, values, minlength=n_traders).astype(np.float64, copy=False)


def compute_margin(book: Book, spot_usd: FloatArray, params: MarginParams) -> MarginResult:
    """Equity, MM, IM, health, free collateral and deltas for every trader in ``book``.

    ``spot_usd`` has one price per underlying (same order as ``book.underlyings``).
    """
    if spot_usd.shape != (len(book.underlyings),):
        raise BookError("spot_usd", f"expected one price per underlying ({len(book.underlyings)})")
    if np.any(~np.isfinite(spot_usd)) or np.any(spot_usd <= 0):
        raise BookError("spot_usd", "prices must be finite and positive")
    spot = spot_usd[book.underlying]
    delta_usd = book.size * spot
    pnl = delta_usd[:, None] * scan_moves(book, params)[book.underlying]

    positions = np.arange(book.trader.size, dtype=np.int64)
    isolated = mode_margin(book, (book.trader, positions), pnl, delta_usd, params)
    cross = mode_margin(book, (book.trader, book.account, book.underlying), pnl, delta_usd, params)
    portfolio = mode_margin(book, (book.trader, book.underlying), pnl, delta_usd, params)

    unrealised = sum_by_trader(book.trader, book.size * (spot - book.entry_price_usd),
                               book.n_traders)
    collateral = sum_by_trader(book.collateral_trader, book.collateral_usd, book.n_traders)
    equity = collateral + unrealised
    initial = params.initial_to_maintenance * portfolio
    # A book with no requirement is infinitely healthy, whatever its equity.
    health = np.divide(equity, portfolio, out=np.full_like(equity, np.inf), where=portfolio > 0)
    delta = np.zeros((book.n_traders, len(book.underlyings)))
    np.add.at(delta, (book.trader, book.underlying), book.size)
    return MarginResult(
        params_version=params.version,
        equity_usd=equity,
        maintenance_margin_usd=portfolio,
        initial_margin_usd=initial,
        health=health,
        free_collateral_usd=np.maximum(0.0, equity - initial),
        delta=delta,
        isolated_mm_usd=isolated,
        protocol_cross_mm_usd=cross,
    )
