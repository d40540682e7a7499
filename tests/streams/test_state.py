"""Reducers are idempotent and order-safe; attestations are deterministic."""

from __future__ import annotations

import json

import pytest

from engine import MarginParams, MarginResult
from streams.oracle import OraclePrice
from streams.risk import margin_by_market_set, margin_in_one_call, next_attestation
from streams.settings import AttestationTarget, StreamSettings
from streams.state import TraderState, apply_attestation, apply_proven, apply_reorg
from wire.records import Attestation, Position, ProvenBook

TRADER = "0x" + "ab" * 20
WAD = 10**18


def proven(chain_id: int, block: int, log_index: int, size: float, collateral: int = 10_000,
           venue: str = "0x" + "11" * 20) -> ProvenBook:
    block_hash = "0x" + f"{chain_id:04x}{block:060x}"
    return ProvenBook(
        event_id=f"{chain_id}:{block_hash}:{log_index}", chain_id=chain_id, venue=venue,
        trader=TRADER, block_number=block, block_hash=block_hash,
        block_timestamp=1_700_000_000 + block,
        state_root="0x" + "00" * 32, commitment="0x" + "22" * 32, collateral_wad=collateral * WAD,
        positions=(Position(market="ETH", size_wad=int(size * WAD), entry_price_wad=3000 * WAD),),
        account_proof=(), storage_slot="0x" + "00" * 32, storage_proof=(),
    )


def eth(usd: int, degraded: bool = False) -> OraclePrice:
    return OraclePrice("ETH", usd * WAD, 1_700_000_000, degraded)


SETTINGS_PARAMS = MarginParams()
SETTINGS = StreamSettings(targets=(
    AttestationTarget(chain_id=41001, oracle="0x" + "aa" * 20),
    AttestationTarget(chain_id=41002, oracle="0x" + "bb" * 20),
))


def test_duplicates_and_reordering_change_nothing() -> None:
    records = [proven(1, 10, 0, 1.0), proven(1, 12, 3, 2.0), proven(2, 11, 0, -2.0)]
    in_order = TraderState(trader=TRADER)
    for r in records:
        in_order = apply_proven(in_order, r)
    shuffled = TraderState(trader=TRADER)
    for r in [records[2], records[1], records[1], records[0], records[2], records[0]]:
        shuffled = apply_proven(shuffled, r)
    assert shuffled == in_order
    assert shuffled.books["1:" + "0x" + "11" * 20].block_number == 12


def test_reducer_does_not_mutate_its_input() -> None:
    before = TraderState(trader=TRADER)
    after = apply_proven(before, proven(1, 10, 0, 1.0))
    assert before.books == {} and len(after.books) == 1


def test_hedged_attestation_is_deterministic_and_per_chain() -> None:
    state = apply_proven(apply_proven(TraderState(trader=TRADER), proven(41001, 10, 0, 10.0)),
                         proven(41002, 20, 0, -10.0))
    result = margin_in_one_call([state], {"ETH": eth(3000)}, SETTINGS_PARAMS)
    assert result is not None
    a = next_attestation(state, result, 0, SETTINGS)
    b = next_attestation(state, result, 0, SETTINGS)
    assert a is not None and a == b
    # $300 hedged-delta charge + $36 funding provision, against 2 × $5,418 isolated.
    assert a.maintenance_margin_wad == 336 * WAD < a.isolated_margin_wad == 10_836 * WAD
    assert a.sequence == 1 and len({c.digest for c in a.chains}) == 2
    assert a.valid_until == a.issued_at + SETTINGS.attestation_validity_s
    # Unchanged figures: no new attestation; the sequence only rises.
    after = apply_attestation(state, a)
    assert next_attestation(after, result, 0, SETTINGS) is None


def test_no_margin_without_a_price() -> None:
    state = apply_proven(TraderState(trader=TRADER), proven(1, 10, 0, 1.0))
    assert margin_in_one_call([state], {}, SETTINGS_PARAMS) is None



def test_reorg_retraction_restores_the_pre_reorg_state() -> None:
    before = apply_proven(TraderState(trader=TRADER), proven(1, 10, 0, 1.0))
    after = apply_proven(apply_proven(before, proven(2, 11, 0, -1.0)), proven(1, 12, 0, 3.0))
    orphaned = frozenset({proven(1, 12, 0, 3.0).block_hash})
    retracted = apply_reorg(after, 1, orphaned)
    assert retracted.books == apply_proven(before, proven(2, 11, 0, -1.0)).books
    assert apply_reorg(retracted, 1, orphaned) is retracted  # idempotent
    gone = apply_reorg(before, 1, frozenset({proven(1, 10, 0, 1.0).block_hash}))
    assert gone.books == {} and gone.history == {}


def test_out_of_order_older_book_is_kept_for_a_later_retraction() -> None:
    newer, older = proven(1, 12, 0, 3.0), proven(1, 10, 0, 1.0)
    state = apply_proven(apply_proven(TraderState(trader=TRADER), newer), older)
    assert list(state.books.values()) == [newer.head()]
    assert list(apply_reorg(state, 1, frozenset({newer.block_hash})).books.values()) == [
        older.head()]


def test_a_batch_of_traders_attests_what_each_alone_would() -> None:
    # The worker margins many traders per engine call, the auditor one at a time: the
    # digests must agree byte for byte whatever else is in the batch.
    def trader_book(i: int) -> ProvenBook:
        markets = [("ETH", 3000), ("BTC", 60_000), ("SOL", 150)][: 1 + i % 3]
        return proven(1, 10 + i, 0, 1.0).model_copy(update={
            "trader": f"0x{i + 1:040x}", "venue": f"0x{(i % 2) + 0x11:040x}",
            "positions": tuple(Position(market=m, size_wad=(i + 1) * WAD * 1000 // p,
                                        entry_price_wad=p * WAD) for m, p in markets)})

    prices = {m: OraclePrice(m, p * WAD, 1_700_000_000, False)
              for m, p in (("ETH", 3000), ("BTC", 61_000), ("SOL", 140))}
    states = [apply_proven(TraderState(trader=f"0x{i + 1:040x}"), trader_book(i))
              for i in range(12)]
    together = margin_by_market_set(states, prices, SETTINGS_PARAMS)
    for state, batched in zip(states, together, strict=True):
        assert batched is not None
        alone = margin_in_one_call([state], prices, SETTINGS_PARAMS)
        assert alone is not None
        mine = next_attestation(state, alone, 0, SETTINGS, prices)
        theirs = next_attestation(state, batched[0], batched[1], SETTINGS, prices)
        assert mine is not None and mine == theirs


def first_attested() -> tuple[TraderState, Attestation, MarginResult]:
    """One book at ETH $3,000 and its first attestation: (state after it, it, margin)."""
    state = apply_proven(TraderState(trader=TRADER), proven(1, 10, 0, 1.0))
    result = margin_in_one_call([state], {"ETH": eth(3000)}, SETTINGS_PARAMS)
    assert result is not None
    first = next_attestation(state, result, 0, SETTINGS, {"ETH": eth(3000)})
    assert first is not None
    return apply_attestation(state, first), first, result


def test_an_unchanged_trader_is_re_attested_near_expiry_on_the_data_clock() -> None:
    state, first, result = first_attested()

    def at(observed_at: int) -> dict[str, OraclePrice]:
        return {"ETH": OraclePrice("ETH", 3000 * WAD, observed_at, False)}

    early = first.valid_until - SETTINGS.renew_before_s - 1
    late = first.valid_until - SETTINGS.renew_before_s
    assert next_attestation(state, result, 0, SETTINGS, at(early)) is None  # nothing moved
    renewed = next_attestation(state, result, 0, SETTINGS, at(late))
    assert renewed is not None and renewed.sequence == first.sequence + 1
    assert renewed.maintenance_margin_wad == first.maintenance_margin_wad
    assert renewed.valid_until == late + SETTINGS.attestation_validity_s


def test_renewal_must_fall_inside_the_validity() -> None:
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="renew_before_s"):
        StreamSettings(attestation_validity_s=600, renew_before_s=600)


def test_a_lending_supply_is_an_asset_that_hedges_a_short_perp() -> None:
    short = proven(1, 10, 0, -10.0, collateral=5_000)
    supplied = proven(2, 11, 0, 10.0, collateral=0, venue="0x" + "22" * 20)
    supplied = supplied.model_copy(update={"positions": tuple(
        p.model_copy(update={"kind": "lending"}) for p in supplied.positions)})
    state = apply_proven(apply_proven(TraderState(trader=TRADER), short), supplied)
    alone = apply_proven(TraderState(trader=TRADER), short)
    prices = {"ETH": eth(3000)}
    both = margin_in_one_call([state], prices, SETTINGS_PARAMS)
    short_only = margin_in_one_call([alone], prices, SETTINGS_PARAMS)
    assert both is not None and short_only is not None
    # The supply is worth 10 × $3,000 to equity (a perp only its P&L, here zero).
    assert both.equity_usd[0] == 5_000 + 30_000
    assert short_only.equity_usd[0] == 5_000
    assert both.maintenance_margin_usd[0] < 0.2 * short_only.maintenance_margin_usd[0]


def test_an_option_is_valued_on_the_data_clock_and_a_written_one_needs_margin() -> None:
    t0 = 1_700_000_000
    expiry = t0 + 30 * 86_400

    def book_with(size: float) -> ProvenBook:
        b = proven(3, 10, 0, 1.0, collateral=10_000, venue="0x" + "33" * 20)
        option = Position(market="ETH", size_wad=int(size * WAD), entry_price_wad=100 * WAD,
                          kind="call", strike_wad=3300 * WAD, expiry=expiry)
        return b.model_copy(update={"positions": (option,)})

    prices = {"ETH": OraclePrice("ETH", 3000 * WAD, t0, False)}
    long = apply_proven(TraderState(trader=TRADER), book_with(1.0))
    written = apply_proven(TraderState(trader=TRADER), book_with(-1.0))
    r_long = margin_in_one_call([long], prices, SETTINGS_PARAMS, {"ETH": 0.6})
    r_written = margin_in_one_call([written], prices, SETTINGS_PARAMS, {"ETH": 0.6})
    assert r_long is not None and r_written is not None
    import numpy as np

    from engine.pricing import black76

    value = float(black76(np.array([True]), np.array([3000.0]), np.array([3300.0]),
                          np.array([(expiry - (t0 + 10)) / (365 * 86_400)]),
                          np.array([0.6]))[0])
    # The clock is the newest of the book's block (t0 + 10) and the price (t0).
    assert r_long.equity_usd[0] == pytest.approx(10_000 + value, rel=1e-9)
    assert r_written.equity_usd[0] == pytest.approx(10_000 - value, rel=1e-9)
    assert r_written.maintenance_margin_usd[0] > r_long.maintenance_margin_usd[0]
    assert r_long.maintenance_margin_usd[0] <= value + 1e-9  # a long option risks its value


def test_a_state_keeps_what_the_next_attestation_needs_and_reads_the_older_form() -> None:
    after, first, _ = first_attested()
    assert after.last is not None and after.sequence == first.sequence
    assert after.last.free_collateral_wad == sum(c.free_collateral_wad for c in first.chains)
    assert (after.last.equity_wad, after.last.health, after.last.valid_until) == (
        first.equity_wad, first.health, first.valid_until)
    # A changelog written when the state held the whole attestation reads the same.
    older = after.model_dump(mode="json", exclude={"last"})
    older["last_attestation"] = first.model_dump(mode="json")
    assert TraderState.model_validate_json(json.dumps(older)) == after


def test_table_bytes_are_pydantics_json() -> None:
    """``to_bytes`` joins per-book JSON it makes once: the same bytes as pydantic's, for
    an empty state, several venues and histories, an attestation, and a copied book."""
    state, attestation, _ = first_attested()
    states = [TraderState(trader=TRADER), state, apply_attestation(state, attestation)]
    grown = states[-1]
    for r in [proven(1, 12, 3, 2.0), proven(2, 11, 0, -2.0, venue="0x" + "33" * 20),
              proven(1, 9, 1, 0.5)]:
        grown = apply_proven(grown, r)
        states.append(grown)
    book = grown.history["1:" + "0x" + "11" * 20][0]
    grown.to_bytes()  # its books' JSON is made once here, then copied along below
    moved = book.model_copy(update={"collateral_wad": 1})
    states.append(grown.model_copy(update={"history": {"1:x": (book, moved)}}))
    for s in states:
        assert s.to_bytes() == s.model_dump_json().encode()
        assert TraderState.model_validate_json(s.to_bytes()) == s


@pytest.mark.parametrize("price, paper", [(2_000, False), (3_300, True), (30_000, True)])
def test_paper_profit_is_credit_only_beyond_the_hold_back(price: int, paper: bool) -> None:
    # Long 1 ETH from $3,000 on $10,000 of cash: at a loss, credit is equity − IM; with a
    # paper profit, only what exceeds max(IM, 10% of notional) counts (the Mango pattern:
    # a pumped market is not credit to borrow against elsewhere).
    state = apply_proven(TraderState(trader=TRADER), proven(1, 10, 0, 1.0))
    prices = {"ETH": eth(price)}
    result = margin_in_one_call([state], prices, SETTINGS_PARAMS)
    assert result is not None
    att = next_attestation(state, result, 0, SETTINGS, prices)
    assert att is not None
    im = att.initial_margin_wad
    free = sum(c.free_collateral_wad for c in att.chains)
    profit = (price - 3_000) * WAD
    assert att.equity_wad == 10_000 * WAD + profit
    if not paper:
        expected = att.equity_wad - im
    else:
        hold = max(im, price * WAD // 10)
        expected = 10_000 * WAD + max(profit - hold, 0) - im
        assert expected < att.equity_wad - im
    # Split into equal per-chain lines, rounded down.
    assert free == expected // 2 * 2
