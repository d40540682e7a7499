"""One price per asset from several sources: the median of the fresh ones.

A source is stale when its last observation is older than ``price_staleness_s`` at the
time of the record being processed (a block timestamp: deterministic on replay). With
no fresh source the freshest one is used, and with fresh sources more than
``max_price_deviation`` apart the median is used; either way the price is *degraded*:
the engine widens that underlying's scan, and an attestation on it may not be healthier
than the previous one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

from wire.records import AttestedPrice, PriceUpdate, QuoteRef

Quotes = Mapping[str, Mapping[str, PriceUpdate]]  # asset → source → latest update


@dataclass(frozen=True)
class OraclePrice:
    asset: str
    price_wad: int
    observed_at: int
    degraded: bool
    reason: str = ""
    breaker: bool = False  # the circuit breaker is open: no new credit on this asset
    rounds: tuple[tuple[str, int], ...] = ()  # (source, round id) it is the median of

    @cached_property
    def attested(self) -> AttestedPrice:
        """The price as an attestation lists it: built once, for every trader margined
        with it."""
        return AttestedPrice(asset=self.asset, price_wad=self.price_wad,
                             observed_at=self.observed_at, degraded=self.degraded,
                             breaker=self.breaker,
                             rounds=tuple(QuoteRef(source=s, round_id=r)
                                          for s, r in self.rounds))


Window = tuple[tuple[int, int], ...]  # (observed_at, median price) oldest first


def apply_window(window: Window, observed_at: int, price_wad: int, window_s: int) -> Window:
    """The recent medians of an asset, keeping those within ``window_s`` of the newest."""
    newest = max([observed_at, *(t for t, _ in window)])
    kept = tuple((t, p) for t, p in window if t >= newest - window_s and t != observed_at)
    return tuple(sorted((*kept, (observed_at, price_wad))))


def breaker_open(window: Window, as_of: int, move: float, window_s: int) -> bool:
    """Did the price move more than ``move`` within the ``window_s`` before ``as_of``?
    The breaker closes by itself once the move has left the window (the market settled)."""
    recent = [p for t, p in window if as_of - window_s <= t <= as_of]
    return len(recent) > 1 and (max(recent) - min(recent)) / min(recent) > move


def apply_quote(quotes: Quotes, update: PriceUpdate) -> Quotes:
    """Latest update per (asset, source): a round no newer than the held one changes nothing."""
    held = quotes.get(update.asset, {})
    previous = held.get(update.source)
    if previous is not None and (previous.observed_at, previous.round_id) >= (
            update.observed_at, update.round_id):
        return quotes
    return {**quotes, update.asset: {**held, update.source: update}}


def median_wad(values: list[int]) -> int:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) // 2


def aggregate(asset: str, sources: Mapping[str, PriceUpdate], as_of: int, staleness_s: int,
              max_deviation: float) -> OraclePrice:
    """The asset's price from the latest round of each source, at ``as_of``: the median
    of the fresh ones, or the freshest when none is (degraded), naming the rounds used."""
    fresh = [q for q in sources.values() if as_of - q.observed_at <= staleness_s]
    if not fresh:
        newest = max(sources.values(), key=lambda q: (q.observed_at, q.round_id))
        return OraclePrice(asset, newest.price_wad, newest.observed_at, True,
                           f"every source older than {staleness_s} s",
                           rounds=((newest.source, newest.round_id),))
    price, observed, spread = median_of(fresh)
    rounds = tuple(sorted((q.source, q.round_id) for q in fresh))
    if spread > max_deviation:
        return OraclePrice(asset, price, observed, True,
                           f"sources {spread:.1%} apart (limit {max_deviation:.1%})",
                           rounds=rounds)
    return OraclePrice(asset, price, observed, False, rounds=rounds)


def median_of(quotes: Sequence[PriceUpdate]) -> tuple[int, int, float]:
    """(median price, newest observation, spread as a fraction of the median)."""
    price = median_wad([q.price_wad for q in quotes])
    spread = (max(q.price_wad for q in quotes) - min(q.price_wad for q in quotes)) / price
    return price, max(q.observed_at for q in quotes), spread


def implied_vols(markets: Sequence[str], quotes: Quotes, as_of: int, staleness_s: int,
                 max_deviation: float) -> dict[str, OraclePrice]:
    """The implied volatility at ``as_of`` of each of ``markets`` that has a volatility
    feed (``price_wad`` the annualised volatility), aggregated as prices are: the median
    of the fresh rounds, degraded (its vega shocks widened) when none is fresh or they
    disagree."""
    return {m: aggregate(m, quotes[m], as_of, staleness_s, max_deviation)
            for m in markets if quotes.get(m)}
