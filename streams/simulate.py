"""Pre-trade margin: a trader's current global book with hypothetical trades in it,
margined as the worker margins it, with the same reducers, prices, model and engine.

``BookFold`` keeps every trader's book as a worker's table holds it (the proven books
folded with ``apply_proven``, reorgs retracted with ``apply_reorg``); ``simulate`` puts
the trades into a copy of one trader's state and margins both states with the worker's
own path (``margin_by_market_set``, and ``next_attestation``'s figures), so a request
without trades answers what the worker would attest now.

A trade executes at the oracle price the worker margins with, as a venue trades at its
feed's price:

- ``perp``: ``PerpVenue``'s rule. What it closes realizes its P&L into the book's cash,
  rounded down; what it opens or flips takes the price as entry; a grown position takes
  the size-weighted entry, rounded up for a long and down for a short.
- ``call`` / ``put``: ``OptionVenue``'s rule at the venue's quoted ``premium_wad`` per
  contract: a purchase pays size × premium, rounded up; a sale receives it, rounded
  down. The series (market, kind, strike, expiry) is merged with the one held.

Every amount is in 18-decimal USD; the venue rounds the same way in its token's units
(for a 6-decimal token, at most 10⁻⁶ USD further against the trader per trade).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine import MarginParams
from streams.market_days import MarketDays
from streams.oracle import OraclePrice, Quotes, Window, implied_vols
from streams.risk import (
    WAD,
    Margined,
    credit_line,
    credit_of,
    engine_rows,
    equity_of,
    margin_by_market_set,
    markets_of,
    oracle_prices,
    to_wad,
)
from streams.settings import StreamSettings
from streams.state import TraderState, apply_proven, apply_reorg
from wire import topics
from wire.records import (
    Address,
    BookHead,
    ChainReorg,
    NonNegative,
    Position,
    ProvenBook,
    RecordError,
    decode,
)

MAX_TRADES = 32
ZERO_HASH = "0x" + "00" * 32


class Trade(BaseModel):
    """One hypothetical trade: ``size_wad`` signed contracts (18 decimals) added to the
    trader's position on ``venue`` of ``chain_id``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    chain_id: int = Field(ge=1)
    venue: Address
    market: str = Field(min_length=1, max_length=32)
    kind: Literal["perp", "call", "put"] = "perp"
    size_wad: int
    strike_wad: NonNegative = 0
    expiry: NonNegative = 0  # unix seconds
    premium_wad: NonNegative | None = None  # an option's quote per contract, in USD

    @field_validator("venue", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return v.lower() if isinstance(v, str) else v

    @model_validator(mode="after")
    def _terms(self) -> Trade:
        if self.size_wad == 0:
            raise ValueError("size_wad: must not be zero")
        if self.kind == "perp":
            for name in ("strike_wad", "expiry"):
                if getattr(self, name):
                    raise ValueError(f"{name}: a perp has none")
            if self.premium_wad is not None:
                raise ValueError("premium_wad: a perp has none")
        else:
            for name in ("strike_wad", "expiry"):
                if not getattr(self, name):
                    raise ValueError(f"{name}: an option needs one")
            if self.premium_wad is None:
                raise ValueError("premium_wad: an option trades at the venue's quote")
        return self


class SimulateRequest(BaseModel):
    """``POST /v1/simulate``: whose book, the trades (applied in order), and whether to
    ask each venue if it would take its trade now."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    trader: Address
    trades: tuple[Trade, ...] = Field(default=(), max_length=MAX_TRADES)
    check_venues: bool = True

    @field_validator("trader", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return v.lower() if isinstance(v, str) else v


class SimulationError(ValueError):
    """A request that cannot be simulated: ``field`` names the part of it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class BookFold:
    """Every trader's state as the worker's table holds it, folded from the proven books
    (their heads) and the reorgs. Records that do not decode are skipped: the worker's
    agents dead-letter them."""

    def __init__(self) -> None:
        self.states: dict[str, TraderState] = {}

    def fold(self, topic: str, raw: bytes | None, offset: int = -1) -> None:
        try:
            if topic == topics.POSITION_PROVEN:
                book = decode(ProvenBook, raw)
                state = self.states.get(book.trader) or TraderState(trader=book.trader)
                self.states[book.trader] = apply_proven(state, book, offset)
            elif topic == topics.REORG:
                reorg = decode(ChainReorg, raw)
                orphaned = frozenset(reorg.orphaned)
                for trader, state in list(self.states.items()):
                    self.states[trader] = apply_reorg(state, reorg.chain_id, orphaned)
        except RecordError:
            return

    def state(self, trader: str) -> TraderState:
        return self.states.get(trader) or TraderState(trader=trader)


@dataclass(frozen=True)
class PriceSnapshot:
    """What margining reads of the price view at one moment."""

    quotes: Quotes
    windows: Mapping[str, Window]
    vol_quotes: Quotes
    days: MarketDays | None


def as_of(state: TraderState, markets: Sequence[str], market: PriceSnapshot) -> int:
    """The data clock of a simulation: the newest of the trader's books and of the quotes
    (prices and implied volatilities) of ``markets``, as the worker's clock, never the
    wall clock."""
    clock = engine_rows(state).clock if state.books else 0
    seen = [q.observed_at for quotes in (market.quotes, market.vol_quotes)
            for m in markets for q in quotes.get(m, {}).values()]
    return max([clock, *seen])


def with_trades(state: TraderState, trades: Sequence[Trade],
                prices: Mapping[str, OraclePrice]) -> TraderState:
    """``state`` with ``trades`` executed in order at ``prices`` (a venue's rule each);
    a venue the trader holds nothing on yet gets a book with no cash."""
    history = dict(state.history)
    clock = engine_rows(state).clock if state.books else 0
    for i, trade in enumerate(trades):
        if trade.market not in prices:
            raise SimulationError(f"trades.{i}.market", f"no price for {trade.market}")
        key = TraderState.book_key(trade.chain_id, trade.venue)
        held = history.get(key, ())
        book = held[-1] if held else BookHead(
            event_id=f"{trade.chain_id}:{ZERO_HASH}:0", chain_id=trade.chain_id,
            venue=trade.venue, trader=state.trader, block_number=0, block_hash=ZERO_HASH,
            block_timestamp=clock, collateral_wad=0, positions=())
        cash, positions = execute(book.collateral_wad, book.positions, trade,
                                  prices[trade.market].price_wad)
        traded = book.model_copy(update={"collateral_wad": cash, "positions": positions})
        history[key] = (*held[:-1], traded)
    return state.model_copy(update={"history": history})


def execute(cash: int, positions: tuple[Position, ...], trade: Trade, price_wad: int
            ) -> tuple[int, tuple[Position, ...]]:
    """The book's cash and positions after ``trade`` at ``price_wad``."""
    same = [p for p in positions if p.market == trade.market and p.kind == trade.kind
            and p.strike_wad == trade.strike_wad and p.expiry == trade.expiry]
    rest = tuple(p for p in positions if p not in same)
    old = same[0].size_wad if same else 0
    entry = same[0].entry_price_wad if same else 0
    new = old + trade.size_wad
    flip = old != 0 and new != 0 and (old > 0) != (new > 0)
    if trade.kind == "perp":
        price = price_wad
        closed = old if old != 0 and (new == 0 or flip) else (
            old - new if old != 0 and abs(new) < abs(old) else 0)
        cash += closed * (price - entry) // WAD  # floor: against the trader
    else:
        price = trade.premium_wad or 0
        paid = trade.size_wad * price  # > 0: bought
        # Paid rounded up, received rounded down: against the trader either way.
        if paid > 0:
            cash -= -(-paid // WAD)
        else:
            cash += -paid // WAD
    if new == 0:
        return cash, rest
    if old == 0 or flip:
        entry = price
    elif abs(new) > abs(old):
        entry = average_entry(old, entry, new, price)
    return cash, (*rest, Position(market=trade.market, size_wad=new, entry_price_wad=entry,
                                  kind=trade.kind, strike_wad=trade.strike_wad,
                                  expiry=trade.expiry))


def average_entry(old: int, entry: int, new: int, price: int) -> int:
    """Size-weighted entry of a grown position: up for a long, down for a short (as
    ``PerpVenue._average_entry``)."""
    a, b = abs(old), abs(new)
    total = a * entry + (b - a) * price
    return -(-total // b) if new > 0 else total // b


def figures(state: TraderState, margined: Margined, prices: Mapping[str, OraclePrice],
            settings: StreamSettings) -> dict[str, Any]:
    """What the worker would attest for ``state`` now (``next_attestation``'s figures:
    the same functions), and every mode's requirement."""
    result, row, _ = margined
    marks, equity = equity_of(state, result, row, prices)
    quoted = [prices[m] for m in state.markets]
    line = credit_line(credit_of(result, row, marks, equity, state.last, quoted), settings)
    mm = to_wad(result.maintenance_margin_usd[row])
    return {
        "equity_wad": equity,
        "maintenance_margin_wad": mm,
        "initial_margin_wad": to_wad(result.initial_margin_usd[row]),
        "health": float(min(result.health[row], 1e9)),
        "free_collateral_wad": line * len(settings.targets),
        "modes": {"isolated_wad": to_wad(result.isolated_mm_usd[row]),
                  "protocol_cross_wad": to_wad(result.protocol_cross_mm_usd[row]),
                  "portfolio_wad": mm},
        "chains": [{"chain_id": t.chain_id, "free_collateral_wad": line}
                   for t in settings.targets],
    }


def simulate(state: TraderState, trades: Sequence[Trade], market: PriceSnapshot,
             settings: StreamSettings, params: MarginParams) -> dict[str, Any]:
    """The trader's figures now (``current``) and with ``trades`` executed (``after``),
    margined as the worker margins: ``SimulationError`` for a trade that cannot be."""
    markets = sorted({*state.markets, *(t.market for t in trades)})
    clock = as_of(state, markets, market)
    prices = oracle_prices(markets, market.quotes, clock, settings, market.windows)
    implied = implied_vols(markets, market.vol_quotes, clock, settings.vol_staleness_s,
                           settings.max_vol_deviation)
    after = with_trades(state, trades, prices) if trades else state
    states = [s for s in ((state,) if after is state else (state, after)) if s.books]
    if any(m not in prices for m in markets_of(states)):
        missing = sorted(m for m in markets_of(states) if m not in prices)
        raise SimulationError("trader", f"no price for {', '.join(missing)} yet")
    margined = dict(zip((id(s) for s in states), margin_by_market_set(
        states, prices, params, settings.implied_vol, market.days, implied=implied),
        strict=True))

    def of(s: TraderState) -> dict[str, Any] | None:
        if not s.books:
            return None
        m = margined[id(s)]
        if m is None:  # unreachable: every price is known
            raise SimulationError("trader", "cannot be margined yet")
        return figures(s, m, prices, settings)

    return {
        "trader": state.trader, "as_of": clock,
        "current": of(state), "after": of(after),
        "prices": {m: {"price_wad": p.price_wad, "degraded": p.degraded,
                       "breaker": p.breaker} for m, p in sorted(prices.items())},
    }

