"""The trader board and ``explain``: each state a pending attestation can be in, from the
records the node tails."""

from __future__ import annotations

from typing import Any

from relayer.node.board import MARGINING_S, NodeView, TraderBoard, explain, fold
from wire import topics
from wire.records import (
    Attestation,
    ChainCredit,
    DeadLetter,
    Delivery,
    PositionEvent,
    ProvenBook,
    SourceBlock,
)

A, B = 41001, 41002
TRADER = "0x" + "cd" * 20
NOW = 1_000_000.0


def attestation(trader: str, sequence: int, health: float = 2.0,
                through: dict[int, int] | None = None) -> Attestation:
    blocks = tuple(SourceBlock(chain_id=c, number=n, hash="0x" + "11" * 32)
                   for c, n in (through or {}).items())
    return Attestation(
        trader=trader, sequence=sequence, equity_wad=10**22, maintenance_margin_wad=10**21,
        initial_margin_wad=10**21, health=health, isolated_margin_wad=10**21,
        params_version=1, source_blocks=blocks, source_blocks_hash="0x" + "42" * 32,
        issued_at=1, valid_until=2, chains=tuple(
            ChainCredit(chain_id=c, oracle="0x" + "aa" * 20, free_collateral_wad=10**21,
                        digest="0x" + "00" * 32) for c in (A, B)))


def event(chain_id: int, block: int) -> PositionEvent:
    return PositionEvent.model_construct(event_id=f"{chain_id}:{block}:0", chain_id=chain_id,
                                         trader=TRADER, block_number=block)


def proven(chain_id: int, block: int) -> ProvenBook:
    return ProvenBook.model_construct(chain_id=chain_id, trader=TRADER, block_number=block)


def node(final: int = 100, halted: dict[int, str] | None = None,
         retrying: dict[str, dict[str, Any]] | None = None,
         in_flight: dict[str, dict[str, Any]] | None = None) -> NodeView:
    return NodeView(final={A: final, B: final}, halted=halted or {},
                    retrying={A: retrying or {}, B: {}}, in_flight={A: in_flight or {}, B: {}})


def state(board: TraderBoard, view: NodeView, now: float = NOW) -> tuple[str, str]:
    chain = explain(board, TRADER, [A, B], view, now)["chains"][str(A)]
    return chain["state"], chain["why"]


def test_no_attestation_and_a_halted_chain() -> None:
    board = TraderBoard()
    assert state(board, node())[0] == "no_attestation"
    assert state(board, node(halted={A: "reorg below finality"})) == (
        "halted", "reorg below finality")


def test_an_event_not_final_then_being_proven_then_refused() -> None:
    board = TraderBoard()
    board.on_event(event(A, 105))
    assert state(board, node(final=100))[0] == "not_final"
    assert state(board, node(final=105))[0] == "being_proven"
    board.on_refused(TRADER, f"{A}:105:0", A, "ValueMismatch: commitment")
    assert state(board, node(final=105)) == ("proof_refused", "ValueMismatch: commitment")


def test_proven_then_margining_then_below_threshold() -> None:
    board = TraderBoard()
    board.on_attestation(attestation(TRADER, 1, through={A: 90}))
    board.on_event(event(A, 95))
    board.on_proven(proven(A, 95), NOW)
    assert state(board, node())[0] == "margining"
    assert state(board, node(), NOW + MARGINING_S + 1)[0] == "below_threshold"
    board.on_attestation(attestation(TRADER, 2, through={A: 95}))
    assert state(board, node())[0] == "delivering"


def test_in_flight_retrying_then_the_delivery_itself() -> None:
    board = TraderBoard()
    board.on_attestation(attestation(TRADER, 3))
    key = f"{TRADER}:3"
    # As node_status reports them.
    sent = {"nonce": 7, "tx_hash": "0x" + "ee" * 32, "max_fee_gwei": 1e-9,
            "priority_fee_gwei": 1e-9}
    assert state(board, node(in_flight={key: sent}))[0] == "in_flight"
    retry = {"status": "retrying", "attempts": 2, "next_attempt_at": 0.0,
             "reason": "receipt not seen within 60 s"}
    assert state(board, node(retrying={key: retry})) == (
        "retrying", "attempt 2: receipt not seen within 60 s")
    board.on_delivery(Delivery(trader=TRADER, sequence=3, chain_id=A, status="delivered"))
    assert state(board, node())[0] == "delivered"
    board.on_delivery(Delivery(trader=TRADER, sequence=3, chain_id=A, status="dropped",
                               reason="oracle already holds sequence 4", leg=""))
    assert state(board, node()) == ("dropped", "oracle already holds sequence 4")


def test_folded_from_the_topics_and_liquidations_kept_apart() -> None:
    board = TraderBoard()
    raw = PositionEvent(event_id=f"{A}:0x{'11' * 32}:0", chain_id=A, venue="0x" + "aa" * 20,
                        trader=TRADER, block_number=7, block_hash="0x" + "11" * 32,
                        block_timestamp=1, log_index=0, collateral_wad=0, positions=(),
                        commitment="0x" + "00" * 32)
    fold(board, topics.POSITION_EVENT, raw.to_bytes(), 0)
    letter = DeadLetter.refused(topics.POSITION_EVENT, TRADER.encode(), raw.to_bytes(),
                                "ValueMismatch: block hash")
    fold(board, topics.dead_letter(topics.POSITION_EVENT), letter.to_bytes(), 0)
    fold(board, topics.ATTESTATION, b"not json", 0)  # skipped: its consumer dead-letters it
    leg = Delivery(trader=TRADER, sequence=1, chain_id=A, status="delivered", leg="0:ETH")
    fold(board, topics.DELIVERY, leg.to_bytes(), 0)
    assert board.traders[TRADER].chains[A].refused == "ValueMismatch: block hash"
    assert board.liquidations == [leg] and board.traders[TRADER].chains[A].delivery is None
    assert state(board, node())[0] == "proof_refused"


def test_the_riskiest_come_first() -> None:
    board = TraderBoard()
    for i, health in enumerate((3.0, 0.7, 1.2)):
        board.on_attestation(attestation(f"0x{i:040x}", 1, health=health))
    assert [t["health"] for t in board.riskiest(2)] == [0.7, 1.2]
