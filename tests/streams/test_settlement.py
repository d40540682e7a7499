"""streams.settlement.plan: netting, conservation, holds and buffers, over random books."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.settlement import VenueCash, hold_units, plan
from wire.records import Position

TRADER = "0x" + "ab" * 20
USDC = 10**6
WAD = 10**18


def venue(chain_id: int, cash: int, hold: int = 0, buffer: int = 0) -> VenueCash:
    address = f"0x{chain_id:040x}"
    return VenueCash(chain_id=chain_id, venue=address, vault=address, cash=cash, hold=hold,
                     buffer=buffer)


def test_a_realized_loss_is_paid_from_the_largest_spare_first() -> None:
    orders = plan(TRADER, [venue(1, -700), venue(2, 300), venue(3, 1_000, hold=100)],
                  next_nonce=5, expiry=99, health=2.0, health_floor=1.2)
    assert [(o.src_chain, o.dst_chain, o.amount, o.nonce, o.reason) for o in orders] == [
        (3, 1, 700, 5, "realized loss")]


def test_buffers_wait_below_the_health_floor_but_losses_do_not() -> None:
    venues = [venue(1, -100, buffer=500), venue(2, 5_000)]
    assert [o.amount for o in plan(TRADER, venues, 1, 9, health=1.0, health_floor=1.2)] == [100]
    assert [o.amount for o in plan(TRADER, venues, 1, 9, health=1.3, health_floor=1.2)] == [600]


def test_a_source_keeps_its_own_buffer_and_hold() -> None:
    orders = plan(TRADER, [venue(1, 0, buffer=1_000), venue(2, 1_500, hold=200, buffer=800)],
                  1, 9, health=2.0, health_floor=1.0)
    assert [o.amount for o in orders] == [700]


def test_two_venues_on_one_chain_are_refused() -> None:
    with pytest.raises(ValueError, match="one settling venue per chain"):
        plan(TRADER, [venue(1, 5), venue(1, -5)], 1, 9, 2.0, 1.0)


def test_the_hold_is_the_venues_withdrawal_rule_rounded_up() -> None:
    # 1 ETH long at 3,000 marked at 2,000.5: notional 2,000.5, 20 % IM = 400.1, loss 999.5
    long = Position(market="ETH", size_wad=WAD, entry_price_wad=3_000 * WAD)
    hold = hold_units([long], {"ETH": 2_000 * WAD + WAD // 2}, 2_000, 10**12)
    assert hold == 1_399_600_000      # (400.1 + 999.5) USDC, to the unit
    odd = Position(market="ETH", size_wad=1, entry_price_wad=0)
    assert hold_units([odd], {"ETH": 3 * WAD}, 2_000, 10**12) == 0  # notional rounds to 0
    assert hold_units([], {}, 2_000, 10**12) == 0


@given(st.lists(st.tuples(st.integers(-10**9, 10**9), st.integers(0, 10**8),
                          st.integers(0, 10**8)), min_size=1, max_size=6),
       st.floats(0.5, 3.0))
def test_orders_conserve_and_never_take_more_than_a_venue_spares(
        rows: list[tuple[int, int, int]], health: float) -> None:
    venues = [venue(i + 1, cash, hold, buffer) for i, (cash, hold, buffer) in enumerate(rows)]
    orders = plan(TRADER, venues, 1, 9, health=health, health_floor=1.2)
    by_chain = {v.chain_id: v for v in venues}
    pairs = [(o.src_chain, o.dst_chain) for o in orders]
    assert len(set(pairs)) == len(pairs)                      # one per chain pair at most
    assert [o.nonce for o in orders] == list(range(1, len(orders) + 1))
    out: dict[int, int] = {}
    into: dict[int, int] = {}
    for o in orders:
        assert o.amount > 0
        out[o.src_chain] = out.get(o.src_chain, 0) + o.amount
        into[o.dst_chain] = into.get(o.dst_chain, 0) + o.amount
    assert sum(out.values()) == sum(into.values())
    keep = health >= 1.2
    for chain_id, v in by_chain.items():
        target = v.buffer if keep else 0
        assert not (chain_id in out and chain_id in into)      # netted: a chain gives or takes
        if chain_id in out:
            assert v.cash - out[chain_id] >= max(v.hold, target)
        if chain_id in into:
            assert v.cash + into[chain_id] <= target
    # Everything needed is met unless every spare is spent.
    spare_left = sum(max(0, v.cash - max(v.hold, v.buffer if keep else 0)) - out.get(c, 0)
                     for c, v in by_chain.items() if v.cash >= (v.buffer if keep else 0))
    need_left = sum((v.buffer if keep else 0) - v.cash - into.get(c, 0)
                    for c, v in by_chain.items() if v.cash < (v.buffer if keep else 0))
    assert spare_left == 0 or need_left == 0
