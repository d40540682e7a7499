"""Pre-trade margin: trades executed by the venues' rules, to the wei, and the figures the
worker's own path gives; a request without trades answers what the worker attests."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from engine import MarginParams
from streams.oracle import apply_quote
from streams.risk import margin_by_market_set, next_attestation, oracle_prices
from streams.settings import AttestationTarget, StreamSettings
from streams.simulate import (
    BookFold,
    PriceSnapshot,
    SimulateRequest,
    SimulationError,
    Trade,
    execute,
    simulate,
)
from streams.state import TraderState
from wire import topics
from wire.records import ChainReorg, Position, PriceUpdate, ProvenBook, SourceBlock

WAD = 10**18
T0 = 1_700_000_000
TRADER = "0x" + "cd" * 20
PERPS_A, PERPS_B = "0x" + "11" * 20, "0x" + "12" * 20
SETTINGS = StreamSettings(targets=(AttestationTarget(chain_id=1, oracle="0x" + "aa" * 20),
                                   AttestationTarget(chain_id=2, oracle="0x" + "bb" * 20)))
PARAMS = MarginParams()


def proven(chain_id: int, venue: str, cash_usd: int, *positions: Position,
           block: int = 5, tag: str = "44") -> ProvenBook:
    block_hash = "0x" + tag * 32
    return ProvenBook(
        event_id=f"{chain_id}:{block_hash}:0", chain_id=chain_id, venue=venue, trader=TRADER,
        block_number=block, block_hash=block_hash, block_timestamp=T0,
        state_root="0x" + "00" * 32, commitment="0x" + "22" * 32,
        collateral_wad=cash_usd * WAD, positions=positions, account_proof=(),
        storage_slot="0x" + "00" * 32, storage_proof=())


def perp(size: float, entry: int) -> Position:
    return Position(market="ETH", size_wad=int(size * WAD), entry_price_wad=entry * WAD)


def prices(eth_usd: int) -> PriceSnapshot:
    quotes = apply_quote({}, PriceUpdate(
        asset="ETH", price_wad=eth_usd * WAD, source="feed", round_id=1, observed_at=T0,
        chain_id=1, block_number=1, block_hash="0x" + "33" * 32))
    return PriceSnapshot(quotes=quotes, windows={}, vol_quotes={}, days=None)


def hedged() -> TraderState:
    fold = BookFold()
    fold.fold(topics.POSITION_PROVEN, proven(1, PERPS_A, 10_000, perp(10, 3000)).to_bytes())
    fold.fold(topics.POSITION_PROVEN, proven(2, PERPS_B, 10_000, perp(-10, 3000)).to_bytes())
    return fold.state(TRADER)


def trade(size: float, chain_id: int = 1, venue: str = PERPS_A, **terms: object) -> Trade:
    return Trade(chain_id=chain_id, venue=venue, market="ETH", size_wad=int(size * WAD),
                 **terms)


def test_no_trades_answers_what_the_worker_attests() -> None:
    state = hedged()
    snapshot = prices(3100)
    answer = simulate(state, (), snapshot, SETTINGS, PARAMS)
    market = oracle_prices(["ETH"], snapshot.quotes, T0, SETTINGS)
    [(result, row, basis)] = margin_by_market_set([state], market, PARAMS)
    worker = next_attestation(state, result, row, SETTINGS, market, basis)
    assert worker is not None
    current = answer["current"]
    assert current == answer["after"]
    assert (current["equity_wad"], current["maintenance_margin_wad"],
            current["initial_margin_wad"], current["health"]) == (
        worker.equity_wad, worker.maintenance_margin_wad, worker.initial_margin_wad,
        worker.health)
    assert [c["free_collateral_wad"] for c in current["chains"]] == [
        c.free_collateral_wad for c in worker.chains]
    # Netting never costs, in the simulation as in the engine.
    modes = current["modes"]
    assert modes["portfolio_wad"] <= modes["protocol_cross_wad"] <= modes["isolated_wad"]


def test_closing_a_hedge_leg_realizes_its_pnl_to_the_wei_and_unhedges() -> None:
    state = hedged()
    answer = simulate(state, (trade(-10),), prices(3100), SETTINGS, PARAMS)
    after, current = answer["after"], answer["current"]
    # Long 10 from 3,000 closed at 3,100: +1,000 in cash; the short on chain 2 is left.
    assert after["equity_wad"] == current["equity_wad"] == 20_000 * WAD
    assert after["maintenance_margin_wad"] > current["maintenance_margin_wad"]
    assert after["free_collateral_wad"] < current["free_collateral_wad"]


def test_perp_rules_match_the_venue() -> None:
    cash, held = 1_000 * WAD, (perp(2, 3000),)
    # Grown long: size-weighted entry rounded up (7,000·10¹⁸ / 3 is not whole).
    c, (p,) = execute(cash, held, trade(1), 3001 * WAD)
    assert c == cash and p.size_wad == 3 * WAD and p.entry_price_wad == -(-(2 * 3000 + 3001)
                                                                          * WAD // 3)
    # Reduced: a third of a contract closed half a dollar down, the loss floored
    # (−166,666,666,666,666,666.5 wei → …667); entry kept.
    c, (p,) = execute(cash, held, Trade(chain_id=1, venue=PERPS_A, market="ETH",
                                           size_wad=-(WAD // 3)), 2999 * WAD + WAD // 2)
    assert c == cash - 166_666_666_666_666_667
    assert p.size_wad == 2 * WAD - WAD // 3 and p.entry_price_wad == 3000 * WAD
    # Flipped: all of the old position closed, the rest opened at the price.
    c, (p,) = execute(cash, held, trade(-5), 3100 * WAD)
    assert c == cash + 2 * 100 * WAD and p.size_wad == -3 * WAD
    assert p.entry_price_wad == 3100 * WAD
    # Closed: no position left.
    assert execute(cash, held, trade(-2), 3000 * WAD) == (cash, ())


def test_option_premiums_are_paid_up_and_received_down() -> None:
    option = {"kind": "call", "strike_wad": 3200 * WAD, "expiry": T0 + 30 * 86_400,
              "premium_wad": 100 * WAD + 1}
    bought = Trade(chain_id=1, venue=PERPS_A, market="ETH", size_wad=WAD // 3, **option)
    c, (p,) = execute(0, (), bought, 3000 * WAD)
    assert c == (-(WAD // 3) * (100 * WAD + 1)) // WAD and p.kind == "call"  # paid up
    written = bought.model_copy(update={"size_wad": -(WAD // 3)})
    c, (p,) = execute(0, (), written, 3000 * WAD)
    assert c == (WAD // 3) * (100 * WAD + 1) // WAD and p.size_wad == -(WAD // 3)
    assert -c < (WAD // 3) * (100 * WAD + 1) / WAD + 1  # down, by less than a wei


def test_a_new_venue_and_market_starts_from_no_cash() -> None:
    answer = simulate(hedged(), (trade(1, chain_id=2, venue="0x" + "13" * 20),),
                      prices(3000), SETTINGS, PARAMS)
    assert answer["after"]["maintenance_margin_wad"] > answer["current"][
        "maintenance_margin_wad"]
    assert answer["after"]["equity_wad"] == answer["current"]["equity_wad"]


def test_a_trader_with_no_books_has_no_current_figures() -> None:
    answer = simulate(TraderState(trader=TRADER), (trade(1),), prices(3000), SETTINGS, PARAMS)
    assert answer["current"] is None
    assert answer["after"]["equity_wad"] == 0 and answer["after"]["free_collateral_wad"] == 0


def test_a_market_without_a_price_names_the_trade() -> None:
    other = Trade(chain_id=1, venue=PERPS_A, market="DOGE", size_wad=WAD)
    with pytest.raises(SimulationError) as e:
        simulate(hedged(), (trade(1), other), prices(3000), SETTINGS, PARAMS)
    assert e.value.field == "trades.1.market"


def test_the_fold_is_the_workers_book_reorgs_included() -> None:
    fold = BookFold()
    fold.fold(topics.POSITION_PROVEN, proven(1, PERPS_A, 10_000, perp(1, 3000)).to_bytes())
    later = proven(1, PERPS_A, 10_000, perp(4, 3000), block=6, tag="55")
    fold.fold(topics.POSITION_PROVEN, later.to_bytes())
    assert fold.state(TRADER).books[f"1:{PERPS_A}"].positions[0].size_wad == 4 * WAD
    fold.fold(topics.REORG, ChainReorg(
        chain_id=1, common_ancestor=SourceBlock(chain_id=1, number=5, hash="0x" + "44" * 32),
        orphaned=("0x" + "55" * 32,),
        new_head=SourceBlock(chain_id=1, number=6, hash="0x" + "66" * 32)).to_bytes())
    assert fold.state(TRADER).books[f"1:{PERPS_A}"].positions[0].size_wad == 1 * WAD
    fold.fold(topics.POSITION_PROVEN, b"{not json")  # the worker dead-letters it
    assert len(fold.states) == 1


@pytest.mark.parametrize(("body", "field"), [
    ({"trader": "0x12"}, "trader"),
    ({"trader": TRADER, "trades": [{"chain_id": 1, "venue": PERPS_A, "market": "ETH",
                                    "size_wad": 0}]}, "size_wad"),
    ({"trader": TRADER, "trades": [{"chain_id": 1, "venue": PERPS_A, "market": "ETH",
                                    "size_wad": 1, "kind": "call", "strike_wad": 1,
                                    "expiry": 1}]}, "premium_wad"),
    ({"trader": TRADER, "trades": [{"chain_id": 1, "venue": PERPS_A, "market": "ETH",
                                    "size_wad": 1, "leverage": 5}]}, "leverage"),
    ({"trader": TRADER, "trades": [{"chain_id": 1, "venue": PERPS_A, "market": "ETH",
                                    "size_wad": 1}] * 33}, "trades"),
])
def test_a_bad_request_names_its_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as e:
        SimulateRequest.model_validate(body)
    first = e.value.errors()[0]
    assert field in ".".join(map(str, first["loc"])) + " " + first["msg"]
