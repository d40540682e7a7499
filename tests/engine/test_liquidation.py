"""Liquidation plans: nothing for a healthy trader; the riskiest legs first otherwise."""

from __future__ import annotations

from typing import Any

from engine import MarginParams
from engine.liquidation import plan_liquidation
from engine.whatif import parse_book

P = MarginParams()


def book(collateral: float, positions: list[dict[str, Any]]) -> Any:
    doc = {"market": {"underlyings": {"BTC": {"spot": 60_000, "vol": 0.5},
                                      "ETH": {"spot": 3_000, "vol": 0.6}}},
           "traders": [{"id": "t", "collateral_usd": collateral, "positions": positions}]}
    return parse_book(doc, P)


HEDGED = [{"underlying": "ETH", "kind": "perp", "size": 30, "entry_price": 3000,
           "chain": "a", "venue": "v"},
          {"underlying": "ETH", "kind": "perp", "size": -30, "entry_price": 3000,
           "chain": "b", "venue": "w"}]
NAKED = {"underlying": "BTC", "kind": "perp", "size": 2, "entry_price": 60_000,
         "chain": "c", "venue": "x"}


def test_healthy_portfolio_is_never_liquidated() -> None:
    # Isolated margin would call this trader (2 × 5,400 + 21,600 > 30,000) but the
    # global portfolio is healthy: nothing to close.
    parsed = book(30_000, [*HEDGED, NAKED])
    plan = plan_liquidation(parsed.book, parsed.market, P)
    assert plan.legs == () and plan.health_before >= 1.0


def test_unhealthy_trader_closes_the_naked_leg_not_the_hedge() -> None:
    parsed = book(15_000, [*HEDGED, NAKED])
    plan = plan_liquidation(parsed.book, parsed.market, P)
    assert plan.health_before < 1.0
    assert plan.legs == (2,)  # the naked BTC perp: most risk per dollar of closing cost
    assert plan.restores and plan.health_after >= 1.1


def test_a_lone_losing_leg_is_closed_and_the_plan_ends_there() -> None:
    parsed = book(100, [NAKED])
    plan = plan_liquidation(parsed.book, parsed.market, P)
    assert plan.legs == (0,)
    assert plan.maintenance_margin_after_usd == 0.0


def test_a_leg_is_closed_in_steps_only_as_far_as_the_buffer_needs() -> None:
    # Slightly under maintenance: a quarter of the naked leg is enough to get 15 % above
    # it; the plan does not close the whole leg.
    full = plan_liquidation(book(100, [NAKED]).book, book(100, [NAKED]).market, P)
    assert full.fractions == (1.0,)
    parsed = book(15_000, [*HEDGED, NAKED])
    plan = plan_liquidation(parsed.book, parsed.market, P)
    assert plan.legs == (2,) and 0 < plan.fractions[0] < 1.0
    assert plan.health_after >= 1.15
    fewer = plan_liquidation(parsed.book, parsed.market, P, steps=1)
    assert fewer.fractions == (1.0,) and fewer.cost_usd > plan.cost_usd
