"""Liquidation planning for one trader: the fewest legs, across all venues, whose
closing restores health to a target.

Greedy on risk removed per unit of cost: at each step every remaining leg is tried
out at once (one engine call, each candidate book a "trader"), and the leg whose
closing lowers maintenance margin the most per dollar of closing cost goes first.
Closing a leg turns its value into collateral less the cost (``cost_rate`` of its
notional). A trader whose global health is at least 1 gets an empty plan.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.instruments import Book, IntArray, Market
from engine.margin import compute_margin, mark_to_market
from engine.params import MarginParams


@dataclass(frozen=True)
class LiquidationPlan:
    legs: tuple[int, ...]          # positions of the book to close, in order
    health_before: float
    health_after: float
    maintenance_margin_after_usd: float
    cost_usd: float

    @property
    def restores(self) -> bool:
        return bool(self.legs) and self.health_after >= 1.0


def without(book: Book, keep: list[IntArray], extra_collateral: list[float]) -> Book:
    """One trader per candidate: the book's rows in ``keep[c]`` plus extra cash."""
    rows = np.concatenate(keep) if keep else np.zeros(0, dtype=np.int64)
    trader = np.concatenate([np.full(k.size, c, dtype=np.int64) for c, k in enumerate(keep)])
    n = len(keep)
    base = float(book.collateral_usd.sum())
    return Book(
        n_traders=n, underlyings=book.underlyings, trader=trader, account=book.account[rows],
        underlying=book.underlying[rows], kind=book.kind[rows], size=book.size[rows],
        entry_price_usd=book.entry_price_usd[rows], strike_usd=book.strike_usd[rows],
        expiry_years=book.expiry_years[rows], collateral_trader=np.arange(n, dtype=np.int64),
        collateral_usd=base + np.array(extra_collateral),
    )


def plan_liquidation(book: Book, market: Market, params: MarginParams,
                     target_health: float = 1.1, cost_rate: float = 0.005) -> LiquidationPlan:
    """The plan for the single trader of ``book``."""
    if book.n_traders != 1:
        raise ValueError("plan_liquidation: the book must hold exactly one trader")
    first = compute_margin(book, market, params)
    health = float(first.health[0])
    if health >= 1.0:
        return LiquidationPlan((), health, health, float(first.maintenance_margin_usd[0]), 0.0)
    value = mark_to_market(book, market)
    cost = np.abs(book.size) * market.spot_usd[book.underlying] * cost_rate
    open_rows = list(range(book.trader.size))
    closed: list[int] = []
    cash = 0.0
    mm, after = float(first.maintenance_margin_usd[0]), health
    while open_rows and after < target_health:
        keep = [np.array([r for r in open_rows if r != c], dtype=np.int64) for c in open_rows]
        trial = compute_margin(
            without(book, keep, [cash + value[c] - cost[c] for c in open_rows]), market, params)
        removed = mm - trial.maintenance_margin_usd
        score = removed / np.maximum(cost[open_rows], 1e-9)
        best = int(np.argmax(score))
        if removed[best] <= 0:
            break  # nothing left reduces risk: closing more would only cost
        leg = open_rows.pop(best)
        closed.append(leg)
        cash += value[leg] - cost[leg]
        mm = float(trial.maintenance_margin_usd[best])
        after = float(trial.health[best])
    return LiquidationPlan(tuple(closed), health, after, mm, float(cost[closed].sum()))
