"""What the venue and feed contracts say, decoded into records, and where a venue keeps
its commitments (the commitment itself: ``wire.commitment``)."""

from __future__ import annotations

from typing import Any

from eth_abi import decode as abi_decode

from proofs.keccak import keccak
from relayer.contracts import compiled
from relayer.errors import LogDecodeError
from wire.hexstr import from_hex, to_hex
from wire.records import Position

POSITION_TUPLE = "(bytes32,int256,uint256)"
POSITION_CHANGED_TOPIC = to_hex(keccak(
    f"PositionChanged(address,int256,{POSITION_TUPLE}[],bytes32)".encode()))
OPTION_TUPLE = "(bytes32,int256,uint256,uint256,uint64,bool)"
OPTION_POSITION_CHANGED_TOPIC = to_hex(keccak(
    f"OptionPositionChanged(address,int256,{OPTION_TUPLE}[],bytes32)".encode()))
ANSWER_UPDATED_TOPIC = to_hex(keccak(b"AnswerUpdated(int256,uint256,uint256)"))


def market_name(raw: bytes) -> str:
    try:
        return raw.rstrip(b"\x00").decode("ascii")
    except UnicodeDecodeError as e:
        raise LogDecodeError(f"market 0x{raw.hex()} is not ASCII") from e


Book = tuple[str, int, tuple[Position, ...], str]  # trader, collateral, positions, commitment


def _decode_book(log: dict[str, Any], event: str, row_type: str) -> tuple[str, int, Any, str]:
    try:
        trader = "0x" + log["topics"][1][-40:]
        collateral, rows, commitment = abi_decode(
            ["int256", f"{row_type}[]", "bytes32"], from_hex(log["data"]))
    except (KeyError, IndexError, ValueError, TypeError) as e:
        raise LogDecodeError(f"{event}: {type(e).__name__}: {e}") from e
    return trader.lower(), collateral, rows, to_hex(commitment)


def decode_position_changed(log: dict[str, Any]) -> Book:
    """(trader, collateral, positions, commitment) of a ``PositionChanged`` log."""
    trader, collateral, rows, commitment = _decode_book(log, "PositionChanged", POSITION_TUPLE)
    return trader, collateral, tuple(
        Position(market=market_name(m), size_wad=s, entry_price_wad=p) for m, s, p in rows
    ), commitment


def decode_option_position_changed(log: dict[str, Any]) -> Book:
    """(trader, collateral, positions, commitment) of an ``OptionPositionChanged`` log."""
    trader, collateral, rows, commitment = _decode_book(log, "OptionPositionChanged",
                                                        OPTION_TUPLE)
    return trader, collateral, tuple(
        Position(market=market_name(m), size_wad=s, entry_price_wad=p, strike_wad=k,
                 expiry=x, kind="call" if c else "put")
        for m, s, p, k, x, c in rows), commitment


def decode_answer_updated(log: dict[str, Any]) -> tuple[int, int, int]:
    """(answer, round id, updated at) of a feed's ``AnswerUpdated`` log."""
    try:
        answer = abi_decode(["int256"], from_hex(log["topics"][1]))[0]
        round_id = int(log["topics"][2], 16)
        (updated_at,) = abi_decode(["uint256"], from_hex(log["data"]))
    except (KeyError, IndexError, ValueError, TypeError) as e:
        raise LogDecodeError(f"AnswerUpdated: {type(e).__name__}: {e}") from e
    return answer, round_id, updated_at


def commitment_base_slot() -> int:
    return compiled("PerpVenue").slot_of("commitment")
