"""What the node knows of each trader, for the status API and page: the newest position
event per chain and how far it got (seen, proven, refused), the newest attestation, and
what became of it on each chain. A read model of the log (``TraderBoard``), folded from
the topics the node tails, and ``explain``, which says why a trader's attestation on a
chain is pending.

A pending attestation is in one of these states, checked in this order per chain:
``halted`` (the chain's listener stopped), ``not_final`` (the newest event's block is
not final yet), ``being_proven``, ``proof_refused`` (dead-lettered, with the reason),
``margining`` (proven, not yet in an attestation), ``below_threshold`` (proven a while
ago and no attestation followed: the figures moved less than the change threshold),
``in_flight`` (a transaction sent, no receipt yet), ``retrying`` (with the reason), and
otherwise the delivery's own status (``delivered``, ``dropped``, ``dead_lettered``) or
``no_attestation``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wire import topics
from wire.records import (
    Attestation,
    DeadLetter,
    Delivery,
    PositionEvent,
    ProvenBook,
    RecordError,
    decode,
)

# A book proven this long ago and still in no attestation was judged below threshold
# (the worker margins a proven book within a batch window, well under a second).
MARGINING_S = 10.0
RECENT_LIQUIDATIONS = 20


@dataclass
class ChainView:
    event_block: int = -1
    event_id: str = ""
    proven_block: int = -1
    proven_at: float = 0.0
    refused: str = ""  # why the newest event's proof was dead-lettered
    delivery: Delivery | None = None


@dataclass
class TraderView:
    chains: dict[int, ChainView] = field(default_factory=dict)
    attestation: Attestation | None = None

    def chain(self, chain_id: int) -> ChainView:
        return self.chains.setdefault(chain_id, ChainView())


class TraderBoard:
    def __init__(self) -> None:
        self.traders: dict[str, TraderView] = {}
        self.liquidations: list[Delivery] = []

    def trader(self, address: str) -> TraderView:
        return self.traders.setdefault(address.lower(), TraderView())

    def on_event(self, event: PositionEvent) -> None:
        view = self.trader(event.trader).chain(event.chain_id)
        if event.block_number >= view.event_block:
            view.event_block, view.event_id, view.refused = (event.block_number,
                                                             event.event_id, "")

    def on_proven(self, book: ProvenBook, now: float) -> None:
        view = self.trader(book.trader).chain(book.chain_id)
        if book.block_number >= view.proven_block:
            view.proven_block, view.proven_at = book.block_number, now

    def on_refused(self, trader: str, event_id: str, chain_id: int, reason: str) -> None:
        view = self.trader(trader).chain(chain_id)
        if event_id == view.event_id:
            view.refused = reason

    def on_attestation(self, attestation: Attestation) -> None:
        view = self.trader(attestation.trader)
        if view.attestation is None or attestation.sequence >= view.attestation.sequence:
            view.attestation = attestation

    def on_delivery(self, delivery: Delivery) -> None:
        if delivery.leg:
            self.liquidations = [*self.liquidations, delivery][-RECENT_LIQUIDATIONS:]
            return
        view = self.trader(delivery.trader).chain(delivery.chain_id)
        if view.delivery is None or delivery.sequence >= view.delivery.sequence:
            view.delivery = delivery

    def riskiest(self, n: int) -> list[dict[str, Any]]:
        """The ``n`` traders of lowest attested health."""
        held = [(v.attestation.health, address, v.attestation)
                for address, v in self.traders.items() if v.attestation is not None]
        return [{"trader": address, "health": health, "sequence": a.sequence,
                 "equity_usd": a.equity_wad / 1e18,
                 "maintenance_margin_usd": a.maintenance_margin_wad / 1e18}
                for health, address, a in sorted(held)[:n]]


# The topics the board is folded from.
TOPICS = [topics.POSITION_EVENT, topics.dead_letter(topics.POSITION_EVENT),
          topics.POSITION_PROVEN, topics.ATTESTATION, topics.DELIVERY]


def fold(board: TraderBoard, topic: str, value: bytes | None, timestamp_ms: int) -> None:
    """One record of ``TOPICS`` into the board (a record that does not decode was
    dead-lettered by its own consumer, and is skipped here)."""
    try:
        if topic == topics.POSITION_EVENT:
            board.on_event(decode(PositionEvent, value))
        elif topic == topics.POSITION_PROVEN:
            board.on_proven(decode(ProvenBook, value), timestamp_ms / 1000)
        elif topic == topics.ATTESTATION:
            board.on_attestation(decode(Attestation, value))
        elif topic == topics.DELIVERY:
            board.on_delivery(decode(Delivery, value))
        elif topic == topics.dead_letter(topics.POSITION_EVENT):
            letter = decode(DeadLetter, value)
            event = decode(PositionEvent, bytes.fromhex(letter.value_hex))
            board.on_refused(event.trader, event.event_id, event.chain_id, letter.reason)
    except (RecordError, ValueError):
        return


@dataclass(frozen=True)
class NodeView:
    """What ``explain`` reads of the node besides the board, per chain id: as
    ``relayer.node.status.node_status`` reports a chain's ``deliveries`` and
    ``in_flight``, keyed by trader:sequence."""

    final: Mapping[int, int]                  # newest final block
    halted: Mapping[int, str]                 # why the chain halted
    retrying: Mapping[int, Mapping[str, Mapping[str, Any]]]  # status, attempts, reason
    in_flight: Mapping[int, Mapping[str, Mapping[str, Any]]]  # nonce, tx_hash


def explain(board: TraderBoard, address: str, chain_ids: list[int], node: NodeView,
            now: float) -> dict[str, Any]:
    """The trader's newest attestation and, per chain, its delivery and why it is
    pending (the states of this module's docstring)."""
    trader = board.traders.get(address.lower(), TraderView())
    attestation = trader.attestation
    covered = {s.chain_id: s.number for s in attestation.source_blocks} if attestation else {}
    chains = {}
    for chain_id in chain_ids:
        view = trader.chains.get(chain_id, ChainView())
        key = f"{address.lower()}:{attestation.sequence}" if attestation else ""
        state, why = _state(view, chain_id, covered, key, node, now)
        delivery = view.delivery
        chains[str(chain_id)] = {
            "state": state, "why": why,
            "newest_event_block": view.event_block, "newest_proven_block": view.proven_block,
            "attested_through_block": covered.get(chain_id, -1),
            "delivery": None if delivery is None else {
                "sequence": delivery.sequence, "status": delivery.status,
                "reason": delivery.reason, "tx_hash": delivery.tx_hash},
        }
    return {"trader": address.lower(),
            "attestation": None if attestation is None else {
                "sequence": attestation.sequence, "health": attestation.health,
                "equity_usd": attestation.equity_wad / 1e18,
                "maintenance_margin_usd": attestation.maintenance_margin_wad / 1e18,
                "issued_at": attestation.issued_at, "valid_until": attestation.valid_until,
                "credit": {str(c.chain_id): c.free_collateral_wad / 1e18
                           for c in attestation.chains}},
            "chains": chains}


def _state(view: ChainView, chain_id: int, covered: Mapping[int, int], key: str,
           node: NodeView, now: float) -> tuple[str, str]:
    if chain_id in node.halted:
        return "halted", node.halted[chain_id]
    final = node.final.get(chain_id, -1)
    if view.event_block > max(view.proven_block, covered.get(chain_id, -1)):
        if view.refused:
            return "proof_refused", view.refused
        if view.event_block > final:
            return "not_final", f"block {view.event_block} is not final (final: {final})"
        return "being_proven", f"block {view.event_block} is final; its proof is being built"
    if view.proven_block > covered.get(chain_id, -1):
        if now - view.proven_at < MARGINING_S:
            return "margining", f"book of block {view.proven_block} proven, not yet attested"
        return "below_threshold", (f"book of block {view.proven_block} proven "
                                   f"{now - view.proven_at:.0f} s ago; no attestation: the "
                                   "figures moved less than the change threshold")
    if not key:
        return "no_attestation", "no attestation for this trader yet"
    in_flight = node.in_flight.get(chain_id, {}).get(key)
    if in_flight is not None:
        return "in_flight", (f"transaction {in_flight['tx_hash']} "
                             f"(nonce {in_flight['nonce']}) sent")
    retry = node.retrying.get(chain_id, {}).get(key)
    if retry is not None and retry["status"] == "retrying":
        return "retrying", f"attempt {retry['attempts']}: {retry['reason']}"
    if view.delivery is not None and key.endswith(f":{view.delivery.sequence}"):
        return view.delivery.status, view.delivery.reason
    return "delivering", "attestation issued; no delivery recorded yet"
