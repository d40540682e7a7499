"""A trader's books as engine rows (the columns the engine reads, alone or in a batch),
and figures back to 18-decimal integers."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import Kind
from streams.risk import YEAR_S, build_book, to_wad
from streams.state import TraderState, apply_proven
from wire.records import BookHead, Position

WAD = 10**18
T0 = 1_700_000_000


def book(trader: str, venue: str, block: int, collateral: int,
         *positions: Position) -> BookHead:
    block_hash = f"0x{block:064x}"
    return BookHead(event_id=f"1:{block_hash}:0", chain_id=1, venue=venue, trader=trader,
                    block_number=block, block_hash=block_hash, block_timestamp=T0 + block,
                    collateral_wad=collateral * WAD, positions=positions)


def test_rows_follow_books_by_key_then_positions_as_held() -> None:
    trader = "0x" + "01" * 20
    options = book(trader, "0x" + "22" * 20, 5, 1_000,
                   Position(market="ETH", size_wad=-2 * WAD, entry_price_wad=100 * WAD,
                            kind="call", strike_wad=3500 * WAD, expiry=T0 + 86_400),
                   Position(market="BTC", size_wad=WAD // 2, entry_price_wad=60_000 * WAD))
    lending = book(trader, "0x" + "11" * 20, 7, 0,
                   Position(market="SOL", size_wad=-30 * WAD, entry_price_wad=150 * WAD,
                            kind="lending"),
                   Position(market="ETH", size_wad=3 * WAD, entry_price_wad=3000 * WAD,
                            kind="lending"))
    state = apply_proven(apply_proven(TraderState(trader=trader), options), lending)
    clock = T0 + 3_600
    alone = build_book([state], state.markets, [clock])
    assert alone.underlyings == ("BTC", "ETH", "SOL")
    # "1:0x11…" sorts before "1:0x22…": the lending pool is account 0.
    assert alone.account.tolist() == [0, 0, 1, 1]
    assert alone.underlying.tolist() == [2, 1, 1, 0]
    assert alone.kind.tolist() == [Kind.BORROW, Kind.SUPPLY, Kind.CALL, Kind.PERP]
    assert alone.size.tolist() == [30.0, 3.0, -2.0, 0.5]
    assert alone.entry_price_usd.tolist() == [150.0, 3000.0, 100.0, 60_000.0]
    assert alone.strike_usd.tolist() == [0.0, 0.0, 3500.0, 0.0]
    assert alone.expiry_years.tolist() == [0.0, 0.0, (86_400 - 3_600) / YEAR_S, 0.0]
    assert alone.collateral_trader.tolist() == [0, 0]
    assert alone.collateral_usd.tolist() == [0.0, 1_000.0]
    # Past expiry an option is valued a second before it.
    late = build_book([state], state.markets, [T0 + 90_000])
    assert late.expiry_years[2] == 1 / YEAR_S

    # In a batch over more markets, with another trader first: the same rows, its
    # underlyings renumbered into the batch's.
    other = apply_proven(TraderState(trader="0x" + "02" * 20), book(
        "0x" + "02" * 20, "0x" + "11" * 20, 3, 50,
        Position(market="AVAX", size_wad=WAD, entry_price_wad=30 * WAD)))
    batch = build_book([other, state], ("AVAX", "BTC", "ETH", "SOL"), [T0, clock])
    mine = batch.trader == 1
    assert batch.trader.tolist() == [0, 1, 1, 1, 1]
    assert [batch.underlyings[u] for u in batch.underlying[mine]] == [
        alone.underlyings[u] for u in alone.underlying]
    for column in ("account", "kind", "size", "entry_price_usd", "strike_usd", "expiry_years"):
        assert np.array_equal(getattr(batch, column)[mine], getattr(alone, column)), column
    assert batch.collateral_trader.tolist() == [0, 1, 1]
    assert batch.collateral_usd.tolist() == [50.0, 0.0, 1_000.0]


@settings(max_examples=3000, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e30, max_value=1e30))
def test_to_wad_is_the_shortest_decimal_form_times_ten_to_the_18(x: float) -> None:
    assert to_wad(x) == int((Decimal(repr(x)) * WAD).to_integral_value())
