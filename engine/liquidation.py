"""Liquidation planning for one trader: the fewest closes, across all venues, that bring
health back above a buffer over maintenance, in bounded steps.

Greedy on risk removed per unit of cost: at each step every leg still open is tried
with one more step of it closed (``steps`` steps make a whole leg; one engine call,
each candidate book a "trader"), and the step that lowers maintenance margin the most
per dollar of closing cost goes first. Closing turns value into collateral less the
cost (``cost_rate`` of the notional closed). The plan stops as soon as health reaches
``target_health`` (Derive stops 15 % above maintenance), so a leg is closed only as far
as needed, never all at once. A trader whose global health is at least 1 gets an
empty plan.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.instruments import Book, FloatArray, IntArray, Market
from engine.margin import compute_margin, mark_to_market
from engine.params import MarginParams

# Stop once equity is this far above maintenance margin (Derive's 15 % buffer).
LIQUIDATION_BUFFER = 1.15
# What closing costs, of the notional closed: the local venues' liquidation penalty (1%).
LIQUIDATION_COST = 0.01
# A leg is closed this many steps at most, a quarter of it at a time.
STEPS = 4


@dataclass(frozen=True)
class LiquidationPlan:
    legs: tuple[int, ...]          # positions of the book to close (some of), in order
    fractions: tuple[float, ...]   # of each, the share to close (whole steps)
    health_before: float
    health_after: float
    maintenance_margin_after_usd: float
    cost_usd: float

    @property
    def restores(self) -> bool:
        return bool(self.legs) and self.health_after >= 1.0


def without(book: Book, keep: list[IntArray], extra_collateral: list[float],
            sizes: list[FloatArray] | None = None) -> Book:
    """One trader per candidate: the book's rows in ``keep[c]`` (at ``sizes[c]`` when
    given) plus extra cash."""
    rows = np.concatenate(keep) if keep else np.zeros(0, dtype=np.int64)
    trader = np.concatenate([np.full(k.size, c, dtype=np.int64) for c, k in enumerate(keep)])
    n = len(keep)
    base = float(book.collateral_usd.sum())
    size = np.concatenate(sizes) if sizes else book.size[rows]
    return Book(
        n_traders=n, underlyings=book.underlyings, trader=trader, account=book.account[rows],
        underlying=book.underlying[rows], kind=book.kind[rows], size=size,
        entry_price_usd=book.entry_price_usd[rows], strike_usd=book.strike_usd[rows],
        expiry_years=book.expiry_years[rows], collateral_trader=np.arange(n, dtype=np.int64),
        collateral_usd=base + np.array(extra_collateral),
    )


def plan_liquidation(book: Book, market: Market, params: MarginParams,
                     target_health: float = LIQUIDATION_BUFFER, cost_rate: float = LIQUIDATION_COST,
                     steps: int = STEPS) -> LiquidationPlan:
    """The plan for the single trader of ``book``."""
    if book.n_traders != 1:
        raise ValueError("plan_liquidation: the book must hold exactly one trader")
    first = compute_margin(book, market, params)
    health = float(first.health[0])
    if health >= 1.0:
        return LiquidationPlan((), (), health, health, float(first.maintenance_margin_usd[0]),
                               0.0)
    # Per step of each leg: the value it turns into cash, and what closing it costs.
    value = mark_to_market(book, market) / steps
    cost = np.abs(book.size) * market.spot_usd[book.underlying] * cost_rate / steps
    left = np.full(book.trader.size, steps)
    order: list[int] = []
    cash = 0.0
    mm, after = float(first.maintenance_margin_usd[0]), health
    while left.any() and after < target_health:
        candidates = [int(c) for c in np.flatnonzero(left)]
        keep, sizes = [], []
        for c in candidates:
            share = left.copy()
            share[c] -= 1
            rows = np.flatnonzero(share)
            keep.append(rows)
            sizes.append(book.size[rows] * share[rows] / steps)
        trial = compute_margin(
            without(book, keep, [cash + value[c] - cost[c] for c in candidates], sizes),
            market, params)
        removed = mm - trial.maintenance_margin_usd
        score = removed / np.maximum(cost[candidates], 1e-9)
        best = int(np.argmax(score))
        if removed[best] <= 0:
            break  # nothing left reduces risk: closing more would only cost
        leg = candidates[best]
        if leg not in order:
            order.append(leg)
        left[leg] -= 1
        cash += value[leg] - cost[leg]
        mm = float(trial.maintenance_margin_usd[best])
        after = float(trial.health[best])
    closed = [(steps - int(left[leg])) for leg in order]
    return LiquidationPlan(tuple(order), tuple(k / steps for k in closed), health, after, mm,
                           float(sum(cost[leg] * k for leg, k in zip(order, closed,
                                                                     strict=True))))
