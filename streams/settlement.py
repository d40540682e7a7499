"""Settlement orders from a trader's global state: the transfers between chains that
make every settling venue's cash cover its realized losses and the trader's buffers,
netted to at most one transfer per chain pair. Pure: replay computes the same orders
from the same state, byte for byte.

Per settling venue (one per chain: the chain's PerpVenue, which its ClearingVault
moves cash in and out of), in collateral token units:

    need  = max(0, target − cash)     target = the trader's buffer there, while global
                                      health ≥ the floor; else 0 (a realized loss, i.e.
                                      negative cash, is always a need)
    spare = max(0, cash − max(hold, target))
                                      hold = what a withdrawal must leave for the open
                                      positions there (PerpVenue's rule), rounded up

Needs are met from spares largest first (ties by chain id): each match exhausts a need
or a spare, so no chain pair is matched twice. Rounding goes against the trader: a hold
rounds up, so a spare is never more than the venue would let go.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from streams.oracle import OraclePrice
from streams.settings import StreamSettings
from streams.state import TraderState
from wire.records import Position, SettlementOrder

WAD = 10**18
BPS = 10_000
WITHDRAW_HOLDBACK_BPS = 1_000  # PerpVenue: 10 % of notional, as Hyperliquid keeps


@dataclass(frozen=True)
class VenueCash:
    """The trader's cash on one chain's settling venue, and what must stay there."""

    chain_id: int
    venue: str
    vault: str
    cash: int     # token units, signed: negative is a realized loss not yet paid
    hold: int = 0  # token units the venue keeps for the open positions
    buffer: int = 0  # the trader's intent: at least this much cash here


def hold_units(positions: Iterable[Position], prices_wad: dict[str, int],
               initial_margin_bps: int, unit_wad: int) -> int:
    """The cash (token units) PerpVenue keeps when cash leaves with ``positions`` open:
    the least ``left`` with left × unit + unrealized losses ≥ max(IM, 10 %) × notional,
    as ``PerpVenue._hold_back`` checks it (its floor divisions kept)."""
    notional = 0
    losses = 0
    for p in positions:
        price = prices_wad[p.market]
        notional += abs(p.size_wad) * price // WAD
        losses += min(p.size_wad * (price - p.entry_price_wad) // WAD, 0)  # floor, as the venue
    if notional == 0:
        return 0
    hold = notional * max(initial_margin_bps, WITHDRAW_HOLDBACK_BPS) // BPS
    return max(0, -(-(hold - losses) // unit_wad))


def plan(trader: str, venues: Sequence[VenueCash], next_nonce: int, expiry: int,
         health: float, health_floor: float, sequence: int = 0) -> list[SettlementOrder]:
    """The orders to send now, numbered from ``next_nonce`` in the order returned."""
    chains = [v.chain_id for v in venues]
    if len(set(chains)) != len(chains):
        raise ValueError("venues: one settling venue per chain")
    keep_buffers = health >= health_floor
    needs: list[tuple[int, VenueCash]] = []
    spares: list[tuple[int, VenueCash]] = []
    for v in venues:
        target = v.buffer if keep_buffers else 0
        if v.cash < target:
            needs.append((target - v.cash, v))
        else:
            spare = v.cash - max(v.hold, target)
            if spare > 0:
                spares.append((spare, v))
    needs.sort(key=lambda e: (-e[0], e[1].chain_id))
    spares.sort(key=lambda e: (-e[0], e[1].chain_id))
    orders: list[SettlementOrder] = []
    nonce = next_nonce
    i = j = 0
    while i < len(needs) and j < len(spares):
        (need, dst), (spare, src) = needs[i], spares[j]
        amount = min(need, spare)
        orders.append(SettlementOrder(
            trader=trader, nonce=nonce, src_chain=src.chain_id, src_vault=src.vault,
            src_venue=src.venue, dst_chain=dst.chain_id, dst_vault=dst.vault,
            dst_venue=dst.venue, amount=amount, expiry=expiry,
            reason="realized loss" if dst.cash < 0 else "buffer", sequence=sequence))
        nonce += 1
        needs[i], spares[j] = (need - amount, dst), (spare - amount, src)
        if need == amount:
            i += 1
        if spare == amount:
            j += 1
    return orders


@dataclass(frozen=True)
class Settling:
    """What an attestation carries of settlement: the orders issued with it, the
    trader's newest nonce after them, and until when (data clock) they are in flight."""

    orders: tuple[SettlementOrder, ...]
    nonce: int
    until: int


def settling_of(state: TraderState, settings: StreamSettings,
                prices: Mapping[str, OraclePrice] | None, health: float,
                clock: int) -> Settling:
    """The orders ``state`` needs now, unless earlier ones are still in flight; none
    when a settling venue's positions lack a price (its hold-back is unknown)."""
    last = state.last
    held = Settling((), last.settlement_nonce if last else 0, last.settling_until if last else 0)
    targets = [t for t in settings.targets if t.vault is not None and t.settle_venue is not None]
    if len(targets) < 2 or clock < held.until:
        return held
    venues = []
    for t in targets:
        assert t.vault is not None and t.settle_venue is not None
        book = state.books.get(TraderState.book_key(t.chain_id, t.settle_venue))
        if book is None:
            continue
        try:
            hold = hold_units(book.positions, {m: prices[m].price_wad for m in
                                               {p.market for p in book.positions}}
                              if prices else {}, t.initial_margin_bps, t.unit_wad)
        except KeyError:
            return held
        # Cash in token units: the venue keeps it × unit exactly.
        venues.append(VenueCash(chain_id=t.chain_id, venue=t.settle_venue, vault=t.vault,
                                cash=book.collateral_wad // t.unit_wad, hold=hold))
    orders = plan(state.trader, venues, held.nonce + 1, clock + settings.settlement_ttl_s,
                  health, settings.settlement_health_floor, state.sequence + 1)
    if not orders:
        return held
    return Settling(tuple(orders), orders[-1].nonce,
                    clock + settings.settlement_ttl_s + settings.settlement_grace_s)
