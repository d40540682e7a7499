"""Auto-deleveraging proposals: what the last rung of the backstop would take, and from
whom, once a venue has recorded a bad debt that its insurance fund and liquidator
reserve did not cover.

The ranking is the one BitMEX and Hyperliquid publish: profit ratio × leverage, here
``unrealized profit / entry cost × notional / attested global equity`` (the leverage
is global because the margin is). Only positions in profit, of traders with a positive
attested equity, are candidates. Walking the ranking, each position is proposed to close
just enough that its realized profit, handed over as a haircut, covers what is left of
the deficit. Nothing here executes: a proposal is for the venue's governance to act on,
never absorbed silently.

Integers throughout (18 decimals, like the venues' accounting); the ranking compares
exact fractions, ties broken by trader and market, so a proposal is reproducible.
Rounding goes towards covering the deficit: a close rounds up, a haircut is never more
than the profit the close realizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

WAD = 10**18


@dataclass(frozen=True)
class Candidate:
    """One open position on the venue, at the feed price now."""

    trader: str
    market: str
    size_wad: int    # signed, > 0 long
    entry_wad: int   # average entry price
    price_wad: int   # feed price now
    equity_wad: int  # the trader's attested global equity

    @property
    def profit_wad(self) -> int:
        return self.size_wad * (self.price_wad - self.entry_wad) // WAD

    @property
    def score(self) -> Fraction:
        """Profit ratio × leverage; 0 for a position not in profit or an account with
        no positive equity (never a candidate)."""
        cost = abs(self.size_wad) * self.entry_wad // WAD
        if self.profit_wad <= 0 or self.equity_wad <= 0 or cost == 0:
            return Fraction(0)
        notional = abs(self.size_wad) * self.price_wad // WAD
        return Fraction(self.profit_wad, cost) * Fraction(notional, self.equity_wad)


@dataclass(frozen=True)
class Step:
    trader: str
    market: str
    close_wad: int     # signed like the position
    profit_wad: int    # what the close realizes at the feed price
    haircut_wad: int   # the part of it proposed to cover the deficit
    score: Fraction


@dataclass(frozen=True)
class Proposal:
    deficit_wad: int
    steps: tuple[Step, ...]

    @property
    def covered_wad(self) -> int:
        return sum(s.haircut_wad for s in self.steps)

    @property
    def uncovered_wad(self) -> int:
        return self.deficit_wad - self.covered_wad


def ranked(candidates: list[Candidate]) -> list[Candidate]:
    """Candidates in profit, highest profit ratio × leverage first."""
    eligible = [c for c in candidates if c.score > 0]
    return sorted(eligible, key=lambda c: (-c.score, c.trader, c.market))


def propose(deficit_wad: int, candidates: list[Candidate]) -> Proposal:
    """The steps that cover ``deficit_wad`` (or as much of it as the profitable
    positions hold) from the top of the ranking down."""
    if deficit_wad < 0:
        raise ValueError(f"deficit_wad: {deficit_wad} is negative")
    steps: list[Step] = []
    left = deficit_wad
    for c in ranked(candidates):
        if left == 0:
            break
        size = abs(c.size_wad)
        # The fewest units whose profit covers what is left: profit per unit is exact
        # only over the whole position, so round the close up and re-derive its profit.
        close = min(size, -(-left * size // c.profit_wad))
        signed = close if c.size_wad > 0 else -close
        profit = signed * (c.price_wad - c.entry_wad) // WAD
        haircut = min(profit, left)
        steps.append(Step(c.trader, c.market, signed, profit, haircut, c.score))
        left -= haircut
    return Proposal(deficit_wad, tuple(steps))
