"""From trader states and prices to engine arrays, and from margin results to attestations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import lru_cache

import numpy as np

from engine import Book, Kind, MarginParams, MarginResult, Market, compute_margin
from engine.liquidation import STEPS, plan_liquidation
from streams.market_days import Basis, MarketDays
from streams.oracle import OraclePrice, Quotes, Window, aggregate, breaker_open
from streams.settings import StreamSettings
from streams.settlement import Settling, settling_of
from streams.state import Attested, TraderState
from wire.eip712 import attestation_struct_hash, source_blocks_hash, typed_data_digest
from wire.hexstr import from_hex, to_hex
from wire.records import (
    Attestation,
    BookHead,
    Liquidation,
    LiquidationLeg,
    Position,
    SourceBlock,
)

WAD = 10**18
YEAR_S = 365 * 86_400
# Implied volatility of an underlying without one configured (streams.implied_vol).
DEFAULT_IMPLIED_VOL = 0.6


def to_wad(x: float) -> int:
    """USD to an 18-decimal integer through the float's shortest decimal form, so that
    9790.0 becomes exactly 9790·10¹⁸ (deterministic, and free of binary noise)."""
    text = repr(float(x))
    whole, dot, fraction = text.partition(".")
    if dot and len(fraction) <= 18 and "e" not in fraction:
        # The decimal digits shifted by 18 places: exact with no rounding to do, and a
        # third of the Decimal route's time (several figures per attestation).
        return int(whole + fraction.ljust(18, "0"))
    return int((Decimal(text) * WAD).to_integral_value())


def legs_of(state: TraderState) -> list[tuple[str, BookHead, Position]]:
    """Every position of ``state`` in engine row order: books by key, then as held."""
    return [(key, book, p) for key, book in engine_rows(state).ordered for p in book.positions]


# Columns of ``EngineRows.legs``.
ACCOUNT, UNDERLYING, KIND, SIZE, ENTRY, STRIKE, EXPIRY = range(7)
ENGINE_KIND = {"perp": Kind.PERP, "call": Kind.CALL, "put": Kind.PUT}


@dataclass(frozen=True, slots=True)
class EngineRows:
    """What margining and attesting read of a trader's current books, derived once per
    history (``TraderState.derived``): a price move re-margins the same books again and
    again, and a batch over many traders joins their rows without a loop per position."""

    ordered: tuple[tuple[str, BookHead], ...]  # the current books by key
    # One row per position in engine order: its account (the book's rank by key), its
    # underlying (index into the state's markets), engine kind, size, entry price and
    # strike in USD, expiry in unix seconds (0 for a future). Plain tuples: a batch
    # makes one array of all its traders' rows.
    legs: tuple[tuple[float, ...], ...]
    collateral_usd: tuple[float, ...]  # per book, by key
    clock: int  # the newest block timestamp among the books
    source_blocks: tuple[SourceBlock, ...]  # as an attestation lists them
    source_blocks_hash: bytes
    book_events: tuple[str, ...]

    @classmethod
    def of(cls, state: TraderState) -> EngineRows:
        ordered = tuple(sorted(state.books.items()))
        index = {m: i for i, m in enumerate(state.markets)}
        rows: list[tuple[float, ...]] = []
        for account, (_, book) in enumerate(ordered):
            for p in book.positions:
                if p.kind == "lending":
                    kind, size = (Kind.SUPPLY if p.size_wad > 0 else Kind.BORROW,
                                  abs(p.size_wad) / WAD)
                else:
                    kind, size = ENGINE_KIND[p.kind], p.size_wad / WAD
                rows.append((account, index[p.market], kind, size, p.entry_price_wad / WAD,
                             p.strike_wad / WAD, p.expiry if p.kind in ("call", "put") else 0))
        source_blocks, source_hash = attested_blocks(tuple(sorted(
            {(b.chain_id, b.block_number, b.block_hash) for _, b in ordered})))
        return cls(
            ordered=ordered,
            legs=tuple(rows),
            collateral_usd=tuple(b.collateral_wad / WAD for _, b in ordered),
            clock=max(b.block_timestamp for _, b in ordered),
            source_blocks=source_blocks,
            source_blocks_hash=source_hash,
            book_events=tuple(b.event_id for _, b in ordered))


@lru_cache(maxsize=4096)
def attested_blocks(blocks: tuple[tuple[int, int, str], ...]
                    ) -> tuple[tuple[SourceBlock, ...], bytes]:
    """Source blocks (chain id, number, hash), sorted, as an attestation lists them, and
    their hash. Shared: every trader whose books were all proven in one block has the
    same, and a block proves hundreds of books."""
    return (tuple(SourceBlock(chain_id=c, number=n, hash=h) for c, n, h in blocks),
            source_blocks_hash((c, n, from_hex(h)) for c, n, h in blocks))


def engine_rows(state: TraderState) -> EngineRows:
    return state.derived("_engine_rows", lambda: EngineRows.of(state))


def build_book(states: Sequence[TraderState], underlyings: Sequence[str],
               clocks: Sequence[int]) -> Book:
    """Engine arrays for ``states``: one row per position, one collateral row per book.
    Accounts are numbered per trader (its books in key order), as they would be alone.
    A perp is a future valued by its P&L; a lending balance is an asset supplied or a
    debt borrowed, valued whole; an option's time to expiry runs from the trader's data
    clock (``clocks``, see ``data_clock``), so replay finds the same."""
    wanted = tuple(underlyings)
    index = {u: i for i, u in enumerate(wanted)}
    rows: list[tuple[float, ...]] = []
    collateral: list[float] = []
    n_legs, n_books = [], []
    for state in states:
        held = engine_rows(state)
        if state.markets == wanted:
            rows += held.legs
        else:  # a batch over more markets than this trader's: renumber its underlyings
            to_batch = [index[m] for m in state.markets]
            rows += ((a, to_batch[int(u)], *rest) for a, u, *rest in held.legs)
        collateral += held.collateral_usd
        n_legs.append(len(held.legs))
        n_books.append(len(held.collateral_usd))
    legs = np.array(rows, dtype=np.float64).reshape(len(rows), 7)
    trader = np.repeat(np.arange(len(states), dtype=np.int64), n_legs)
    kind = legs[:, KIND].astype(np.int64)
    option = (kind == Kind.CALL) | (kind == Kind.PUT)
    # An option at or past expiry (not settled here) is valued a second before it.
    to_expiry = np.maximum(legs[:, EXPIRY] - np.asarray(clocks, dtype=np.float64)[trader], 1.0)
    return Book(
        n_traders=len(states),
        underlyings=wanted,
        trader=trader,
        account=legs[:, ACCOUNT].astype(np.int64),
        underlying=legs[:, UNDERLYING].astype(np.int64),
        kind=kind,
        size=legs[:, SIZE].copy(),
        entry_price_usd=legs[:, ENTRY].copy(),
        strike_usd=legs[:, STRIKE].copy(),
        expiry_years=np.where(option, to_expiry / YEAR_S, 0.0),
        collateral_trader=np.repeat(np.arange(len(states), dtype=np.int64), n_books),
        collateral_usd=np.array(collateral, dtype=np.float64),
    )


def market_for(markets: Sequence[str], prices: Mapping[str, OraclePrice],
               params: MarginParams, vols: Mapping[str, float] | None = None,
               basis: Basis | None = None,
               implied: Mapping[str, OraclePrice] | None = None) -> Market:
    """The engine's market: the oracle prices; the implied volatilities of the feeds
    (``implied``, a degraded one stale), else the configured ``vols``; and the basis's
    correlations (else the default correlation for every pair)."""
    implied = implied or {}
    spot = np.array([prices[m].price_wad / WAD for m in markets], dtype=np.float64)
    vol = np.array([implied[m].price_wad / WAD if m in implied
                    else (vols or {}).get(m, DEFAULT_IMPLIED_VOL) for m in markets])
    market = Market.flat(spot, vol, correlation=params.default_correlation)
    if basis is not None and basis.correlation is not None:
        market = replace(market, correlation=basis.correlation)
    if implied:
        market = replace(market, vol_stale=np.array([m in implied and implied[m].degraded
                                                     for m in markets]))
    return replace(market, stale=np.array([prices[m].degraded for m in markets]))


def data_clock(state: TraderState, prices: Mapping[str, OraclePrice] | None,
               implied: Mapping[str, OraclePrice] | None = None) -> int:
    """The newest timestamp among the trader's books and the prices (and implied
    volatilities) of its markets: the clock of its attestation (``issued_at``), never
    the wall clock."""
    clock = engine_rows(state).clock
    seen = [quotes[m].observed_at for quotes in (prices, implied) if quotes
            for m in state.markets if m in quotes]
    return max([clock, *seen])


def liquidation_for(state: TraderState, attestation: Attestation,
                    prices: Mapping[str, OraclePrice], params: MarginParams,
                    vols: Mapping[str, float] | None = None,
                    basis: Basis | None = None,
                    implied: Mapping[str, OraclePrice] | None = None) -> Liquidation:
    """The engine's plan for a trader whose attestation found health < 1 (margined with
    the attestation's ``basis`` and implied volatilities)."""
    markets = state.markets
    params = basis.params if basis is not None else params
    plan = plan_liquidation(build_book([state], markets, [data_clock(state, prices, implied)]),
                            market_for(markets, prices, params, vols, basis, implied), params)
    legs = legs_of(state)
    return Liquidation(
        trader=state.trader, sequence=attestation.sequence, health=plan.health_before,
        health_after=min(plan.health_after, 1e9),
        legs=tuple(LiquidationLeg(chain_id=legs[i][1].chain_id, venue=legs[i][1].venue,
                                  market=legs[i][2].market, size_wad=legs[i][2].size_wad,
                                  kind=legs[i][2].kind, strike_wad=legs[i][2].strike_wad,
                                  expiry=legs[i][2].expiry,
                                  close_wad=close_wad(legs[i][2].size_wad, fraction))
                   for i, fraction in zip(plan.legs, plan.fractions, strict=True)),
        reason=(f"health {plan.health_before:.3f} < 1 at sequence {attestation.sequence}; "
                f"closing {len(plan.legs)} leg(s) restores {min(plan.health_after, 1e9):.3f}"),
    )


def close_wad(size_wad: int, fraction: float) -> int | None:
    """How much of a leg a plan closes (``None``: all of it); a part rounds down to the
    plan's step, so what is closed never exceeds what the plan priced."""
    if fraction >= 1.0:
        return None
    return abs(size_wad) * round(fraction * STEPS) // STEPS


def markets_of(states: Sequence[TraderState]) -> list[str]:
    return sorted({m for s in states for m in s.markets})


def oracle_prices(markets: Sequence[str], quotes: Quotes, as_of: int,
                  settings: StreamSettings,
                  windows: Mapping[str, Window] | None = None) -> dict[str, OraclePrice]:
    """One price at ``as_of`` per market that has any quote. A market without one is left
    out, so only the traders holding it wait (``margin_in_one_call`` gives them nothing yet)."""
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


def margin_in_one_call(
    states: Sequence[TraderState], prices: Mapping[str, OraclePrice], params: MarginParams,
    vols: Mapping[str, float] | None = None, basis: Basis | None = None,
    implied: Mapping[str, OraclePrice] | None = None,
) -> MarginResult | None:
    """Margin of every state in one engine call over the union of their markets; ``None``
    while a needed price is unknown.

    A degraded price widens its underlying's scan (``stale`` in the engine's market).
    With a ``basis`` (of exactly these markets) its ranges and correlations are used;
    ``implied`` volatilities (from the feeds) replace the configured ``vols``.
    """
    markets = markets_of(states)
    if any(m not in prices for m in markets):
        return None
    clocks = [data_clock(s, prices, implied) for s in states]
    params = basis.params if basis is not None else params
    return compute_margin(build_book(states, markets, clocks),
                          market_for(markets, prices, params, vols, basis, implied), params)


Margined = tuple[MarginResult, int, Basis | None]  # result, row, the model's basis


def margin_by_market_set(
    states: Sequence[TraderState], prices: Mapping[str, OraclePrice], params: MarginParams,
    vols: Mapping[str, float] | None = None, days: MarketDays | None = None,
    day: int | None = None, implied: Mapping[str, OraclePrice] | None = None,
) -> list[Margined | None]:
    """(result, row, basis) per state, one engine call per set of markets held.

    The engine gives a trader the same bits alone or in any batch *over the same
    underlyings*; grouping by the markets held makes each batch's underlyings those of
    the trader alone, so an auditor margining one trader reproduces every digest. With
    ``days``, each set is margined with its basis on ``day`` (default: the newest day
    closed for all its markets).
    """
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, state in enumerate(states):
        groups.setdefault(state.markets, []).append(i)
    out: list[Margined | None] = [None] * len(states)
    for markets, rows in groups.items():
        basis = days.basis(markets, params, day) if days is not None else None
        result = margin_in_one_call([states[i] for i in rows], prices, params, vols, basis,
                                    implied)
        if result is not None:
            for row, i in enumerate(rows):
                out[i] = (result, row, basis)
    return out


@dataclass(frozen=True, slots=True)
class LinearMarks:
    """A trader's books at the oracle prices, in wei, where integers say it exactly:
    one pass over the positions serves the exact equity and the paper-profit cap."""

    equity_wad: int         # cash and every linear leg (options are not in it)
    perp_pnl_wad: int       # net unrealized P&L of the perps
    perp_notional_wad: int  # their notional


def linear_marks(state: TraderState, prices: Mapping[str, OraclePrice]) -> LinearMarks:
    """Cash and every linear leg in integers: a perp at its P&L against its average
    entry, a lending balance at the price, both rounded toward minus infinity (against
    the trader)."""
    equity = pnl = notional = 0
    for _, book in engine_rows(state).ordered:
        equity += book.collateral_wad
        for p in book.positions:
            price = prices[p.market].price_wad
            if p.kind == "perp":
                leg = p.size_wad * (price - p.entry_price_wad) // WAD
                equity += leg
                pnl += leg
                notional += abs(p.size_wad) * price // WAD
            elif p.kind == "lending":
                equity += p.size_wad * price // WAD
    return LinearMarks(equity, pnl, notional)


def exact_equity_wad(marks: LinearMarks, option_value_usd: float) -> int:
    """The trader's equity in wei, what the venues hold valued at the oracle prices: the
    linear marks exactly, options at the engine's Black-76 value. So an attestation's
    equity equals on-chain cash plus unrealized P&L to the wei for a book without
    options."""
    return marks.equity_wad + to_wad(option_value_usd)


# Unrealized profit gives credit only beyond what stays back for open positions:
# max(initial margin, this share of their notional), as Hyperliquid keeps back.
PAPER_PROFIT_HOLDBACK = 0.10


def paper_profit_credit(marks: LinearMarks, equity: int, im: int) -> int:
    """The most credit the trader's equity allows when its net unrealized perp profit
    counts only beyond max(IM, 10% of the perps' notional): a thin market pumped does
    not become credit to borrow or withdraw elsewhere (the Mango / JELLY pattern). A
    book without net paper profit keeps equity − IM."""
    profit = marks.perp_pnl_wad
    if profit <= 0:
        return max(equity - im, 0)
    hold = max(im, int(marks.perp_notional_wad * PAPER_PROFIT_HOLDBACK))
    return max(equity - profit + max(profit - hold, 0) - im, 0)


def moved(previous: Attested, mm_wad: int, equity_wad: int, threshold: float) -> bool:
    """Did MM or equity move by more than ``threshold`` (relative) since ``previous``?"""
    def rel(old: int, new: int) -> float:
        return abs(new - old) / max(abs(old), 1)
    return (rel(previous.maintenance_margin_wad, mm_wad) > threshold
            or rel(previous.equity_wad, equity_wad) > threshold)


def next_attestation(
    state: TraderState, result: MarginResult, row: int, settings: StreamSettings,
    prices: Mapping[str, OraclePrice] | None = None, basis: Basis | None = None,
    implied: Mapping[str, OraclePrice] | None = None,
) -> Attestation | None:
    """The attestation to emit for ``state`` now, or ``None`` when nothing moved enough
    and the previous one is not near its expiry.

    ``issued_at`` is the newest timestamp among the source blocks and the prices used,
    not the wall clock, so that replaying the log reproduces every digest byte for byte;
    the same clock decides a renewal (``renew_before_s`` before ``valid_until``).
    On a degraded price (or implied volatility) nothing healthier than the previous
    attestation is emitted.
    """
    marks, equity = equity_of(state, result, row, prices)
    mm = to_wad(result.maintenance_margin_usd[row])
    previous = state.last
    quoted = [prices[m] for m in state.markets if m in prices] if prices else []
    issued_at = data_clock(state, prices, implied)
    renewal = (previous is not None
               and issued_at >= previous.valid_until - settings.renew_before_s)
    settling = settling_of(state, settings, prices, float(result.health[row]), issued_at)
    if (previous is not None and not renewal and not settling.orders
            and not moved(previous, mm, equity, settings.change_threshold)):
        return None
    vols = [implied[m] for m in state.markets if m in implied] if implied else []
    degraded = any(q.degraded for q in (*quoted, *vols))
    if degraded and previous is not None and (
            float(result.health[row]) > previous.health
            or to_wad(result.free_collateral_usd[row]) > previous.free_collateral_wad):
        return None
    free_total = credit_of(result, row, marks, equity, previous, quoted)
    return attestation_of(state, result, row, settings, quoted, issued_at, equity, mm,
                          free_total, basis, vols, settling)


def equity_of(state: TraderState, result: MarginResult, row: int,
              prices: Mapping[str, OraclePrice] | None) -> tuple[LinearMarks | None, int]:
    """The linear marks (with prices) and the attested equity of ``state``."""
    marks = linear_marks(state, prices) if prices else None
    equity = (exact_equity_wad(marks, float(result.option_value_usd[row])) if marks
              else to_wad(result.equity_usd[row]))
    return marks, equity


def credit_of(result: MarginResult, row: int, marks: LinearMarks | None, equity: int,
              previous: Attested | None, quoted: Sequence[OraclePrice]) -> int:
    """Every chain's credit together: free collateral, with net paper profit counted
    only beyond its holdback, and no more than ``previous`` gave while a circuit breaker
    is open on a market the trader holds."""
    free_total = to_wad(result.free_collateral_usd[row])
    if marks:
        free_total = min(free_total, paper_profit_credit(
            marks, equity, to_wad(result.initial_margin_usd[row])))
    if previous is not None and any(q.breaker for q in quoted):
        # Circuit breaker open: credit may shrink, never grow, until the market settles.
        free_total = min(free_total, previous.free_collateral_wad)
    return free_total


def credit_line(free_total: int, settings: StreamSettings) -> int:
    """Each target chain's credit line: equal shares, rounded down, so that the same
    dollar cannot be drawn on two chains."""
    return free_total // max(len(settings.targets), 1)


def attestation_of(state: TraderState, result: MarginResult, row: int,
                   settings: StreamSettings, quoted: list[OraclePrice], issued_at: int,
                   equity: int, mm: int, free_total: int,
                   basis: Basis | None = None, vols: Sequence[OraclePrice] = (),
                   settling: Settling | None = None) -> Attestation:
    """The next attestation of ``state`` with these figures, a digest per target chain."""
    held = engine_rows(state)
    valid_until = issued_at + settings.attestation_validity_s
    im = to_wad(result.initial_margin_usd[row])
    sequence = state.sequence + 1
    free = credit_line(free_total, settings)
    # Per chain, the newest block of it among the books: a draw on its CreditLedger in
    # or before that block is in these figures (proofs of a chain arrive in block order).
    seen = {b.chain_id: b.number for b in held.source_blocks}
    struct_hashes: dict[int, bytes] = {}

    def struct_hash(source_block: int) -> bytes:
        # Chains without a book share source block 0: one struct hash each.
        if source_block not in struct_hashes:
            struct_hashes[source_block] = attestation_struct_hash(
                trader=from_hex(state.trader), sequence=sequence, equity_wad=equity,
                maintenance_margin_wad=mm, initial_margin_wad=im, free_collateral_wad=free,
                params_version=result.params_version,
                source_blocks_hash=held.source_blocks_hash, source_block=source_block,
                valid_until=valid_until)
        return struct_hashes[source_block]

    chains = tuple(
        {"chain_id": target.chain_id, "oracle": target.oracle, "free_collateral_wad": free,
         "source_block": seen.get(target.chain_id, 0),
         "digest": to_hex(typed_data_digest(target.chain_id, from_hex(target.oracle),
                                            struct_hash(seen.get(target.chain_id, 0))))}
        for target in settings.targets)
    # Validated in one call from plain values and the records shared with other
    # attestations (source blocks per history, prices per batch): cheaper than building
    # every nested record (or than model_construct, which is Python).
    return Attestation.model_validate({
        "trader": state.trader, "sequence": sequence, "equity_wad": equity,
        "maintenance_margin_wad": mm, "initial_margin_wad": im,
        "health": float(min(result.health[row], 1e9)),
        "isolated_margin_wad": to_wad(result.isolated_mm_usd[row]),
        "params_version": result.params_version,
        "source_blocks": held.source_blocks,
        "source_blocks_hash": to_hex(held.source_blocks_hash), "issued_at": issued_at,
        "valid_until": valid_until, "chains": chains,
        "book_events": held.book_events,
        "prices": tuple(q.attested for q in quoted),
        "book_offset": state.book_offset,
        "risk": basis.record if basis is not None else None,
        "vols": tuple(v.attested for v in vols),
        **({"settlements": settling.orders, "settlement_nonce": settling.nonce,
            "settling_until": settling.until} if settling is not None else {}),
    })
