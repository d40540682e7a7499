"""streams.settlement.plan: netting, conservation, holds and buffers, over random books."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import MarginParams
from streams.risk import margin_in_one_call, next_attestation
from streams.settings import AttestationTarget, StreamSettings
from streams.settlement import VenueCash, hold_units, plan
from streams.state import TraderState, apply_attestation, apply_proven
from tests.streams.test_state import SETTINGS, TRADER, eth, proven
from wire.records import Attestation, Position

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


VENUE = "0x" + "11" * 20
SETTLING = StreamSettings(targets=(
    AttestationTarget(chain_id=41001, oracle="0x" + "aa" * 20, vault="0x" + "a1" * 20,
                      settle_venue=VENUE),
    AttestationTarget(chain_id=41002, oracle="0x" + "bb" * 20, vault="0x" + "b1" * 20,
                      settle_venue=VENUE),
), settlement_ttl_s=600, settlement_grace_s=120)


def attest_now(state: TraderState, price: int) -> Attestation | None:
    result = margin_in_one_call([state], {"ETH": eth(price)}, MarginParams())
    assert result is not None
    return next_attestation(state, result, 0, SETTLING, {"ETH": eth(price)})


def test_an_attestation_carries_the_orders_its_state_needs_and_holds_the_next_while_in_flight(
        ) -> None:
    # Chain 41001: cash −$500 (a realized loss), no position; 41002: $20,000 and 1 ETH short.
    state = apply_proven(apply_proven(TraderState(trader=TRADER),
                                      proven(41001, 10, 0, 0.0, collateral=-500)),
                         proven(41002, 20, 0, -1.0, collateral=20_000))
    a = attest_now(state, 3000)
    assert a is not None
    assert [(o.src_chain, o.dst_chain, o.amount, o.nonce) for o in a.settlements] == [
        (41002, 41001, 500 * USDC, 1)]
    assert a.settlements[0].expiry == a.issued_at + 600
    assert (a.settlement_nonce, a.settling_until) == (1, a.issued_at + 720)
    # Deterministic: the same state gives the same orders (replay and attesters rely on it).
    assert attest_now(state, 3000) == a
    # In flight: the next attestation (the price moved) carries none, and keeps the nonce.
    after = apply_attestation(state, a)
    moved = attest_now(after, 2000)
    assert moved is not None and moved.settlements == ()
    assert (moved.settlement_nonce, moved.settling_until) == (1, a.settling_until)
    # Past its grace, with the books unchanged, the need is ordered again at the next nonce.
    later = apply_proven(apply_attestation(after, moved),
                         proven(41002, 20 + 800, 0, -1.0, collateral=20_000))
    again = attest_now(later, 2000)
    assert again is not None and [o.nonce for o in again.settlements] == [2]


def test_no_orders_without_two_settling_chains() -> None:
    state = apply_proven(apply_proven(TraderState(trader=TRADER),
                                      proven(41001, 10, 0, 0.0, collateral=-500)),
                         proven(41002, 20, 0, -1.0, collateral=20_000))
    result = margin_in_one_call([state], {"ETH": eth(3000)}, MarginParams())
    assert result is not None
    plain = next_attestation(state, result, 0, SETTINGS, {"ETH": eth(3000)})
    assert plain is not None and plain.settlements == () and plain.settlement_nonce == 0
