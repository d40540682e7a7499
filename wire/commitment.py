"""The storage word a venue keeps per trader: its book commitment.

``commitment[trader] = keccak256(abi.encode(trader, collateral, positions))`` (see
PerpVenue.vy, LendingPool.vy, OptionVenue.vy). ``positions`` is a dynamic array of
static tuples, so the encoding is three head words (address, collateral, the array's
offset 0x60), the array length, then each tuple's words in order:

- perp and lending legs: ``(bytes32 market, int256 size, uint256 entry price)``;
- a book with any option: ``(bytes32 market, int256 size, uint256 entry price,
  uint256 strike, uint64 expiry, bool is call)`` for every leg.

A trader who closed everything has the zero word. The proof service checks an event
against it before proving, and an audit checks every proven book against it again.
"""

from __future__ import annotations

from collections.abc import Sequence

from proofs.keccak import keccak
from wire.eip712 import word
from wire.hexstr import from_hex, to_hex
from wire.records import Position

ZERO = "0x" + "00" * 32
ARRAY_OFFSET = word(3 * 32)  # the array's data follows the three head words


def market_bytes(name: str) -> bytes:
    """A market name as a venue's ``bytes32`` (ASCII, right-padded with zeros)."""
    return name.encode("ascii").ljust(32, b"\x00")


def book_commitment(trader: str, collateral_wad: int, positions: Sequence[Position]) -> str:
    """The commitment a venue stores for this book, as 0x-hex."""
    if collateral_wad == 0 and not positions:
        return ZERO
    options = any(p.kind in ("call", "put") for p in positions)
    legs: list[bytes] = []
    for p in positions:
        legs += (market_bytes(p.market), word(p.size_wad), word(p.entry_price_wad))
        if options:
            legs += (word(p.strike_wad), word(p.expiry), word(int(p.kind == "call")))
    encoded = b"".join((word(from_hex(trader)), word(collateral_wad), ARRAY_OFFSET,
                        word(len(positions)), *legs))
    return to_hex(keccak(encoded))
