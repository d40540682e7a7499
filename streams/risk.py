"""From trader states and prices to engine arrays, and from margin results to attestations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from decimal import Decimal

import numpy as np

from engine import Book, Kind, MarginParams, MarginResult, Market, compute_margin
from engine.liquidation import plan_liquidation
from streams.attestation import attestation_struct_hash, source_blocks_hash, typed_data_digest
from streams.oracle import OraclePrice, Quotes, Window, aggregate, breaker_open
from streams.records import (
    Attestation,
    BookHead,
    Liquidation,
    LiquidationLeg,
    Position,
)
from streams.settings import StreamSettings
from streams.state import Attested, TraderState

WAD = 10**18
YEAR_S = 365 * 86_400
# Implied volatility of an underlying without one configured (streams.implied_vol).
DEFAULT_IMPLIED_VOL = 0.6


def to_wad(x: float) -> int:
    """USD to an 18-decimal integer through the float's shortest decimal form, so that
    9790.0 becomes exactly 9790·10¹⁸ (deterministic, and free of binary noise)."""
    return int((Decimal(repr(float(x))) * WAD).to_integral_value())


def legs_of(state: TraderState) -> list[tuple[str, BookHead, Position]]:
    """Every position of ``state`` in engine row order: books by key, then as held."""
    return [(key, book, p) for key, book in sorted(state.books.items()) for p in book.positions]


def build_book(states: Sequence[TraderState], underlyings: Sequence[str],
               clocks: Sequence[int]) -> Book:
    """Engine arrays for ``states``: one row per position, one collateral row per book.
    Accounts are numbered per trader (its books in key order), as they would be alone.
    A perp is a future valued by its P&L; a lending balance is an asset supplied or a
    debt borrowed, valued whole; an option's time to expiry runs from the trader's data
    clock (``clocks``, see ``data_clock``), so replay finds the same."""
    index = {u: i for i, u in enumerate(underlyings)}
    trader, account, underlying, kind, size, entry = [], [], [], [], [], []
    strike, expiry = [], []
    coll_trader, coll = [], []
    for t, state in enumerate(states):
        accounts = {key: a for a, key in enumerate(sorted(state.history))}
        for _, book in sorted(state.books.items()):
            coll_trader.append(t)
            coll.append(book.collateral_wad / WAD)
        for key, _, p in legs_of(state):
            trader.append(t)
            account.append(accounts[key])
            underlying.append(index[p.market])
            if p.kind == "lending":
                kind.append(Kind.SUPPLY if p.size_wad > 0 else Kind.BORROW)
                size.append(abs(p.size_wad) / WAD)
            else:
                kind.append({"perp": Kind.PERP, "call": Kind.CALL, "put": Kind.PUT}[p.kind])
                size.append(p.size_wad / WAD)
            entry.append(p.entry_price_wad / WAD)
            strike.append(p.strike_wad / WAD)
            # An option at or past expiry (not settled here) is valued a second before it.
            expiry.append(max(p.expiry - clocks[t], 1) / YEAR_S if p.kind in ("call", "put")
                          else 0.0)
    return Book(
        n_traders=len(states),
        underlyings=tuple(underlyings),
        trader=np.array(trader, dtype=np.int64),
        account=np.array(account, dtype=np.int64),
        underlying=np.array(underlying, dtype=np.int64),
        kind=np.array(kind, dtype=np.int64),
        size=np.array(size, dtype=np.float64),
        entry_price_usd=np.array(entry, dtype=np.float64),
        strike_usd=np.array(strike, dtype=np.float64),
        expiry_years=np.array(expiry, dtype=np.float64),
        collateral_trader=np.array(coll_trader, dtype=np.int64),
        collateral_usd=np.array(coll, dtype=np.float64),
    )


def market_for(markets: Sequence[str], prices: Mapping[str, OraclePrice],
               params: MarginParams, vols: Mapping[str, float] | None = None) -> Market:
    spot = np.array([prices[m].price_wad / WAD for m in markets], dtype=np.float64)
    vol = np.array([(vols or {}).get(m, DEFAULT_IMPLIED_VOL) for m in markets])
    market = Market.flat(spot, vol, correlation=params.default_correlation)
    return replace(market, stale=np.array([prices[m].degraded for m in markets]))


def data_clock(state: TraderState, prices: Mapping[str, OraclePrice] | None) -> int:
    """The newest timestamp among the trader's books and the prices of its markets: the
    clock of its attestation (``issued_at``), never the wall clock."""
    clock = max(b.block_timestamp for b in state.books.values())
    held = [m for m in state.markets if prices and m in prices]
    return max([clock, *(prices[m].observed_at for m in held)]) if prices else clock


def liquidation_for(state: TraderState, attestation: Attestation,
                    prices: Mapping[str, OraclePrice], params: MarginParams,
                    vols: Mapping[str, float] | None = None) -> Liquidation:
    """The engine's plan for a trader whose attestation found health < 1."""
    markets = state.markets
    plan = plan_liquidation(build_book([state], markets, [data_clock(state, prices)]),
                            market_for(markets, prices, params, vols), params)
    legs = legs_of(state)
    return Liquidation(
        trader=state.trader, sequence=attestation.sequence, health=plan.health_before,
        health_after=min(plan.health_after, 1e9),
        legs=tuple(LiquidationLeg(chain_id=legs[i][1].chain_id, venue=legs[i][1].venue,
                                  market=legs[i][2].market, size_wad=legs[i][2].size_wad)
                   for i in plan.legs),
        reason=(f"health {plan.health_before:.3f} < 1 at sequence {attestation.sequence}; "
                f"closing {len(plan.legs)} leg(s) restores {min(plan.health_after, 1e9):.3f}"),
    )


def markets_of(states: Sequence[TraderState]) -> list[str]:
    return sorted({m for s in states for m in s.markets})


def oracle_prices(markets: Sequence[str], quotes: Quotes, as_of: int,
                  settings: StreamSettings,
                  windows: Mapping[str, Window] | None = None) -> dict[str, OraclePrice]:
    """One price at ``as_of`` per market that has any quote. A market without one is left
    out, so only the traders holding it wait (``margin_for`` gives them nothing yet)."""
    prices = {}
    for m in markets:
        if not quotes.get(m):
            continue
        price = aggregate(m, quotes[m], as_of, settings.price_staleness_s,
                          settings.max_price_deviation)
        tripped = breaker_open((windows or {}).get(m, ()), as_of,
                               settings.circuit_breaker_move, settings.circuit_breaker_window_s)
        prices[m] = replace(price, breaker=tripped)
    return prices


def margin_for(
    states: Sequence[TraderState], prices: Mapping[str, OraclePrice], params: MarginParams,
    vols: Mapping[str, float] | None = None,
) -> MarginResult | None:
    """Margin of every state in one engine call over the union of their markets; ``None``
    while a needed price is unknown.

    A degraded price widens its underlying's scan (``stale`` in the engine's market).
    """
    markets = markets_of(states)
    if any(m not in prices for m in markets):
        return None
    clocks = [data_clock(s, prices) for s in states]
    return compute_margin(build_book(states, markets, clocks),
                          market_for(markets, prices, params, vols), params)


def margins_for(
    states: Sequence[TraderState], prices: Mapping[str, OraclePrice], params: MarginParams,
    vols: Mapping[str, float] | None = None,
) -> list[tuple[MarginResult, int] | None]:
    """(result, row) per state, one engine call per set of markets held.

    The engine gives a trader the same bits alone or in any batch *over the same
    underlyings*; grouping by the markets held makes each batch's underlyings those of
    the trader alone, so an auditor margining one trader reproduces every digest.
    """
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, state in enumerate(states):
        groups.setdefault(state.markets, []).append(i)
    out: list[tuple[MarginResult, int] | None] = [None] * len(states)
    for rows in groups.values():
        result = margin_for([states[i] for i in rows], prices, params, vols)
        if result is not None:
            for row, i in enumerate(rows):
                out[i] = (result, row)
    return out


def moved(previous: Attested, mm_wad: int, equity_wad: int, threshold: float) -> bool:
    """Did MM or equity move by more than ``threshold`` (relative) since ``previous``?"""
    def rel(old: int, new: int) -> float:
        return abs(new - old) / max(abs(old), 1)
    return (rel(previous.maintenance_margin_wad, mm_wad) > threshold
            or rel(previous.equity_wad, equity_wad) > threshold)


def next_attestation(
    state: TraderState, result: MarginResult, row: int, settings: StreamSettings,
    prices: Mapping[str, OraclePrice] | None = None,
) -> Attestation | None:
    """The attestation to emit for ``state`` now, or ``None`` when nothing moved enough
    and the previous one is not near its expiry.

    ``issued_at`` is the newest timestamp among the source blocks and the prices used,
    not the wall clock, so that replaying the log reproduces every digest byte for byte;
    the same clock decides a renewal (``renew_before_s`` before ``valid_until``).
    On a degraded price nothing healthier than the previous attestation is emitted.
    """
    equity = to_wad(result.equity_usd[row])
    mm = to_wad(result.maintenance_margin_usd[row])
    previous = state.last
    books = sorted(state.books.items())
    quoted = [prices[m] for m in state.markets if m in prices] if prices else []
    issued_at = data_clock(state, prices)
    renewal = (previous is not None
               and issued_at >= previous.valid_until - settings.renew_before_s)
    if (previous is not None and not renewal
            and not moved(previous, mm, equity, settings.change_threshold)):
        return None
    degraded = any(q.degraded for q in quoted)
    if degraded and previous is not None and (
            float(result.health[row]) > previous.health
            or to_wad(result.free_collateral_usd[row]) > previous.free_collateral_wad):
        return None
    blocks = sorted({(b.chain_id, b.block_number, b.block_hash) for _, b in books})
    valid_until = issued_at + settings.attestation_validity_s
    sources_hash = source_blocks_hash((c, n, bytes.fromhex(h[2:])) for c, n, h in blocks)
    im = to_wad(result.initial_margin_usd[row])
    free_total = to_wad(result.free_collateral_usd[row])
    if previous is not None and any(q.breaker for q in quoted):
        # Circuit breaker open: credit may shrink, never grow, until the market settles.
        free_total = min(free_total, previous.free_collateral_wad)
    sequence = state.sequence + 1
    # Equal per-chain credit lines: the same dollar cannot be drawn on two chains.
    free = free_total // max(len(settings.targets), 1)
    # Every chain gets the same credit line, so one struct hash serves all their digests.
    struct_hash = attestation_struct_hash(
        trader=bytes.fromhex(state.trader[2:]), sequence=sequence, equity_wad=equity,
        maintenance_margin_wad=mm, initial_margin_wad=im, free_collateral_wad=free,
        params_version=result.params_version, source_blocks_hash=sources_hash,
        valid_until=valid_until)
    chains = [
        {"chain_id": target.chain_id, "oracle": target.oracle, "free_collateral_wad": free,
         "digest": "0x" + typed_data_digest(target.chain_id, bytes.fromhex(target.oracle[2:]),
                                            struct_hash).hex()}
        for target in settings.targets]
    # Validated from plain values in one call: cheaper than building the nested records
    # one by one (or than model_construct, which is Python).
    return Attestation.model_validate({
        "trader": state.trader, "sequence": sequence, "equity_wad": equity,
        "maintenance_margin_wad": mm, "initial_margin_wad": im,
        "health": float(min(result.health[row], 1e9)),
        "isolated_margin_wad": to_wad(result.isolated_mm_usd[row]),
        "params_version": result.params_version,
        "source_blocks": [{"chain_id": c, "number": n, "hash": h} for c, n, h in blocks],
        "source_blocks_hash": "0x" + sources_hash.hex(), "issued_at": issued_at,
        "valid_until": valid_until, "chains": chains,
        "book_events": [b.event_id for _, b in books],
        "prices": [{"asset": q.asset, "price_wad": q.price_wad, "observed_at": q.observed_at,
                    "degraded": q.degraded, "breaker": q.breaker} for q in quoted],
    })
