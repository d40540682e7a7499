"""The venue commitment, hand-encoded, against eth_abi's encoding of the same values."""

from __future__ import annotations

import random

import pytest
from eth_abi import encode as abi_encode

from proofs.keccak import keccak
from wire.commitment import ZERO, book_commitment, market_bytes
from wire.records import Position

TRADER = "0x" + "7a" * 20


def reference(trader: str, collateral: int, positions: tuple[Position, ...]) -> str:
    if any(p.kind in ("call", "put") for p in positions):
        rows = [(market_bytes(p.market), p.size_wad, p.entry_price_wad, p.strike_wad, p.expiry,
                 p.kind == "call") for p in positions]
        row_type = "(bytes32,int256,uint256,uint256,uint64,bool)"
    else:
        rows = [(market_bytes(p.market), p.size_wad, p.entry_price_wad) for p in positions]
        row_type = "(bytes32,int256,uint256)"
    encoded = abi_encode(["address", "uint256", f"{row_type}[]"], [trader, collateral, rows])
    return "0x" + keccak(encoded).hex()


@pytest.mark.parametrize("seed", range(30))
def test_matches_the_abi_encoding(seed: int) -> None:
    rng = random.Random(seed)
    kinds = ["perp", "lending"] + (["call", "put"] if seed % 2 else [])
    positions = tuple(
        Position(market=rng.choice(["ETH", "BTC", "SOL"]),
                 size_wad=rng.randint(-10**24, 10**24),
                 entry_price_wad=rng.randint(0, 10**23),
                 kind=rng.choice(kinds),  # type: ignore[arg-type]
                 strike_wad=rng.randint(0, 10**23), expiry=rng.randint(0, 2**40))
        for _ in range(rng.randint(0, 4)))
    collateral = rng.randint(0, 10**24)
    assert book_commitment(TRADER, collateral, positions) == reference(TRADER, collateral,
                                                                       positions)


def test_a_closed_book_is_the_zero_word_and_collateral_alone_is_not() -> None:
    assert book_commitment(TRADER, 0, ()) == ZERO
    assert book_commitment(TRADER, 1, ()) == reference(TRADER, 1, ())
    assert book_commitment(TRADER, 1, ()) != ZERO
