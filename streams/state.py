"""Per-trader risk state and its pure reducers.

``apply(state, record) -> state`` never mutates: Faust writes a table's changelog only
on assignment (``table[k] = v``), so state values are frozen and replaced whole.
Delivery is at-least-once, so every reducer is idempotent: a book already held (same
event id) changes nothing, and the current book is the newest by ``(block, log index)``
whatever order the records arrive in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, TypeAdapter, model_validator

from wire.records import Attestation, BookHead, Liquidation, LiquidationLeg

_T = TypeVar("_T")
HISTORY = 8  # books kept per (chain, venue), so a reorg can fall back to an older one


class Attested(BaseModel):
    """What the next attestation depends on of the last one: the figures it must move
    away from, the health and credit a degraded price or an open breaker may not exceed,
    and the expiry that triggers a renewal. The attestation itself is in the log."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    equity_wad: int
    maintenance_margin_wad: int
    health: float
    free_collateral_wad: int  # every chain's credit line together
    valid_until: int
    settlement_nonce: int = 0
    settling_until: int = 0

    @classmethod
    def of(cls, attestation: Attestation) -> Attested:
        return cls(equity_wad=attestation.equity_wad,
                   maintenance_margin_wad=attestation.maintenance_margin_wad,
                   health=attestation.health,
                   free_collateral_wad=sum(c.free_collateral_wad for c in attestation.chains),
                   valid_until=attestation.valid_until,
                   settlement_nonce=attestation.settlement_nonce,
                   settling_until=attestation.settling_until)


class TraderState(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    trader: str
    # Oldest first, current last. Books without their proofs (``ProvenBook.head``): the
    # proof service verified them and the log keeps them for auditors, so a trader's
    # state stays small, and so does every changelog write.
    history: dict[str, tuple[BookHead, ...]] = {}
    sequence: int = 0
    last: Attested | None = None
    # The offset (on the trader's partition of venue.position_proven.v1) of the newest
    # book folded in: the worker reads a partition in order, so every book of the
    # trader at or below it has been (-1: none yet).
    book_offset: int = -1
    # The legs of the last liquidation plan, as the venues held them then, and until
    # when its flag holds (data clock): one plan in flight at a time (``plan_in_flight``).
    pending_legs: tuple[LiquidationLeg, ...] = ()
    pending_until: int = 0

    @model_validator(mode="before")
    @classmethod
    def _from_whole_attestation(cls, data: Any) -> Any:
        # Changelogs written before ``last`` kept the whole attestation: read them too.
        if isinstance(data, dict) and "last_attestation" in data:
            data = dict(data)
            whole = data.pop("last_attestation")
            if whole is not None:
                data["last"] = Attested.of(Attestation.model_validate(whole))
        return data

    @property
    def books(self) -> dict[str, BookHead]:
        """The current book per (chain, venue): the newest of its history."""
        return self.derived("_books", lambda: {
            key: held[-1] for key, held in self.history.items()})

    @property
    def markets(self) -> tuple[str, ...]:
        """The markets held, sorted: the trader's underlyings in the engine."""
        return self.derived("_markets", lambda: tuple(sorted(
            {p.market for b in self.books.values() for p in b.positions})))

    def derived(self, name: str, derive: Callable[[], _T]) -> _T:
        """``derive()``, once per history: margining one state reads what is derived from
        its books a dozen times. Kept beside the fields (as ``name``, which starts with an
        underscore so that it is never taken for a field) with the history it came from:
        ``model_copy`` copies it along, and a copy with another history (a reducer's)
        derives it again."""
        kept = self.__dict__.get(name)
        if kept is None or kept[0] is not self.history:
            kept = (self.history, derive())
            self.__dict__[name] = kept
        return kept[1]  # type: ignore[no-any-return]

    @staticmethod
    def book_key(chain_id: int, venue: str) -> str:
        return f"{chain_id}:{venue}"

    def to_bytes(self) -> bytes:
        """The table value: ``model_dump_json``'s bytes, each book's JSON made once.
        Books are frozen and a trader's next state holds the same ones again, so they
        are not serialised again on every write; the envelope's order and every value's
        form are pydantic's (tests/streams/test_state.py compares the two)."""
        history = b",".join(
            _STR.dump_json(key) + b":[" + b",".join(_book_json(b) for b in books) + b"]"
            for key, books in self.history.items())
        last = b"null" if self.last is None else self.last.model_dump_json().encode()
        return (b'{"trader":%b,"history":{%b},"sequence":%d,"last":%b,"book_offset":%d,'
                b'"pending_legs":%b,"pending_until":%d}') % (
            _STR.dump_json(self.trader), history, self.sequence, last, self.book_offset,
            _LEGS.dump_json(self.pending_legs), self.pending_until)


_STR = TypeAdapter(str)
_LEGS = TypeAdapter(tuple[LiquidationLeg, ...])
_BOOK = TypeAdapter(BookHead)


def _book_json(book: BookHead) -> bytes:
    """``book`` as a state's history holds it (a BookHead, even from a subclass), kept
    beside its fields like ``TraderState.derived``, with the identity of the book it was
    made from: a copy (``model_copy(update=...)`` copies the fields beside) makes its
    own."""
    made = book.__dict__.get("_json")
    if made is None or made[0] != id(book):
        made = book.__dict__["_json"] = (id(book), _BOOK.dump_json(book))
    return made[1]  # type: ignore[no-any-return]


def apply_proven(state: TraderState, record: BookHead, offset: int = -1) -> TraderState:
    """The state with ``record`` (a proven book, or its head, read at ``offset``) among
    the trader's books on its (chain, venue); the newest by (block, log index) is the
    current one, whatever the arrival order."""
    key = TraderState.book_key(record.chain_id, record.venue)
    held = state.history.get(key, ())
    if any(b.event_id == record.event_id for b in held):
        return state
    history = tuple(sorted((*held, record.head()), key=book_order))[-HISTORY:]
    return state.model_copy(update={"history": {**state.history, key: history},
                                    "book_offset": max(state.book_offset, offset)})


def apply_reorg(state: TraderState, chain_id: int, orphaned: frozenset[str]) -> TraderState:
    """The state without the books of ``chain_id`` proven in orphaned blocks: each venue
    falls back to its newest surviving book (the pre-reorg state), or to none."""
    history = {}
    for key, held in state.history.items():
        survivors = (held if held[0].chain_id != chain_id
                     else tuple(b for b in held if b.block_hash not in orphaned))
        if survivors:
            history[key] = survivors
    if history == state.history:
        return state
    return state.model_copy(update={"history": history})


def apply_attestation(state: TraderState, attestation: Attestation) -> TraderState:
    return state.model_copy(
        update={"sequence": attestation.sequence, "last": Attested.of(attestation)})


def apply_plan(state: TraderState, plan: Liquidation, valid_until: int) -> TraderState:
    """The state with ``plan`` in flight until ``valid_until`` (its flag's expiry)."""
    return state.model_copy(update={"pending_legs": plan.legs, "pending_until": valid_until})


def plan_in_flight(state: TraderState, clock: int) -> bool:
    """Is the last plan still being executed? Until every one of its legs shows in the
    books as closed or changed, and while its flag holds, a new plan would be computed
    from books the keeper is about to change (on one chain before another: a second
    plan would close the same risk twice)."""
    if clock >= state.pending_until:
        return False
    return any(held_size(state, leg) == leg.size_wad for leg in state.pending_legs)


def held_size(state: TraderState, leg: LiquidationLeg) -> int:
    """The trader's position now in ``leg``'s market or series on its venue (0: none)."""
    book = state.books.get(TraderState.book_key(leg.chain_id, leg.venue))
    for p in book.positions if book is not None else ():
        if (p.market == leg.market and p.kind == leg.kind and p.strike_wad == leg.strike_wad
                and p.expiry == leg.expiry):
            return p.size_wad
    return 0


def book_order(book: BookHead) -> tuple[int, int]:
    """Books of one (chain, venue) in the order their events happened."""
    return book.block_number, int(book.event_id.rsplit(":", 1)[-1])
