"""Per-trader risk state and its pure reducers.

``apply(state, record) -> state`` never mutates: Faust writes a table's changelog only
on assignment (``table[k] = v``), so state values are frozen and replaced whole.
Delivery is at-least-once, so every reducer is idempotent: a book proven at an event
no newer than the one already held (same or older ``(block, log index)``) changes
nothing, whatever order duplicates arrive in.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from streams.records import Attestation, ProvenBook


class TraderState(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    trader: str
    books: dict[str, ProvenBook] = {}
    sequence: int = 0
    last_attestation: Attestation | None = None

    @staticmethod
    def book_key(chain_id: int, venue: str) -> str:
        return f"{chain_id}:{venue}"


def apply_proven(state: TraderState, record: ProvenBook) -> TraderState:
    """The state with ``record`` as the trader's book on its (chain, venue)."""
    key = TraderState.book_key(record.chain_id, record.venue)
    held = state.books.get(key)
    if held is not None and (held.block_number, _log_index(held)) >= (
        record.block_number, _log_index(record)
    ):
        return state
    return state.model_copy(update={"books": {**state.books, key: record}})


def apply_attestation(state: TraderState, attestation: Attestation) -> TraderState:
    return state.model_copy(
        update={"sequence": attestation.sequence, "last_attestation": attestation}
    )


def _log_index(book: ProvenBook) -> int:
    return int(book.event_id.rsplit(":", 1)[-1])
