"""Oracle aggregation: median of fresh sources; stale or deviating prices are degraded,
widen margin, and never make an attestation healthier."""

from __future__ import annotations

from engine import MarginParams
from streams.oracle import OraclePrice, aggregate, apply_quote, apply_window, breaker_open
from streams.risk import (
    liquidation_for,
    margin_by_market_set,
    margin_in_one_call,
    next_attestation,
    oracle_prices,
)
from streams.settings import AttestationTarget, StreamSettings
from streams.state import TraderState, apply_attestation, apply_proven
from wire.records import Position, PriceUpdate, ProvenBook

WAD = 10**18
T0 = 1_700_000_000
TRADER = "0x" + "cd" * 20


def quote(usd: float, source: str, at: int, round_id: int = 1) -> PriceUpdate:
    return PriceUpdate(asset="ETH", price_wad=int(usd * WAD), source=source, round_id=round_id,
                       observed_at=at, chain_id=1, block_number=1, block_hash="0x" + "33" * 32)


def sources(*quotes: PriceUpdate) -> dict[str, PriceUpdate]:
    return {q.source: q for q in quotes}


def test_median_of_fresh_sources() -> None:
    p = aggregate("ETH", sources(quote(3000, "a", T0), quote(3010, "b", T0),
                                 quote(3030, "c", T0)), T0 + 10, 3600, 0.02)
    assert p.price_wad == 3010 * WAD and not p.degraded


def test_a_stale_source_is_left_out() -> None:
    p = aggregate("ETH", sources(quote(3000, "a", T0), quote(2000, "b", T0 - 10_000)),
                  T0, 3600, 0.02)
    assert p.price_wad == 3000 * WAD and not p.degraded


def test_all_stale_or_deviating_is_degraded() -> None:
    assert aggregate("ETH", sources(quote(3000, "a", T0)), T0 + 7200, 3600, 0.02).degraded
    apart = aggregate("ETH", sources(quote(3000, "a", T0), quote(3300, "b", T0)), T0, 3600, 0.02)
    assert apart.degraded and "apart" in apart.reason


def test_older_round_of_a_source_changes_nothing() -> None:
    quotes = apply_quote({}, quote(3000, "a", T0, round_id=2))
    assert apply_quote(quotes, quote(2000, "a", T0 - 5, round_id=1)) is quotes
    assert len(apply_quote(quotes, quote(2000, "b", T0))["ETH"]) == 2


def book(size: float) -> ProvenBook:
    block_hash = "0x" + "44" * 32
    return ProvenBook(
        event_id=f"1:{block_hash}:0", chain_id=1, venue="0x" + "11" * 20, trader=TRADER,
        block_number=5, block_hash=block_hash, block_timestamp=T0, state_root="0x" + "00" * 32,
        commitment="0x" + "22" * 32, collateral_wad=10_000 * WAD,
        positions=(Position(market="ETH", size_wad=int(size * WAD), entry_price_wad=3000 * WAD),),
        account_proof=(), storage_slot="0x" + "00" * 32, storage_proof=(),
    )


SETTINGS = StreamSettings(targets=(AttestationTarget(chain_id=1, oracle="0x" + "aa" * 20),))
PARAMS = MarginParams()


def first_attested() -> TraderState:
    state = apply_proven(TraderState(trader=TRADER), book(2.0))
    fresh = {"ETH": OraclePrice("ETH", 3000 * WAD, T0, False)}
    result = margin_in_one_call([state], fresh, PARAMS)
    assert result is not None
    first = next_attestation(state, result, 0, SETTINGS, fresh)
    assert first is not None
    return apply_attestation(state, first)


def test_degraded_price_widens_margin() -> None:
    state = first_attested()
    mm = {}
    for degraded in (False, True):
        result = margin_in_one_call([state], {"ETH": OraclePrice("ETH", 3300 * WAD, T0, degraded)},
                            PARAMS)
        assert result is not None
        mm[degraded] = result.maintenance_margin_usd[0]
    assert mm[True] > mm[False]


def test_degraded_price_never_yields_a_healthier_attestation() -> None:
    state = first_attested()
    previous = state.last
    assert previous is not None
    for params in (PARAMS, MarginParams(stale_range_multiplier=1.0)):
        for usd in range(2000, 4600, 100):
            price = {"ETH": OraclePrice("ETH", usd * WAD, T0, True)}
            result = margin_in_one_call([state], price, params)
            assert result is not None
            att = next_attestation(state, result, 0, SETTINGS, price)
            if att is not None:
                assert att.health <= previous.health
                assert att.chains[0].free_collateral_wad <= previous.free_collateral_wad
    # Without widening, a stale rise would free collateral: it is held back.
    up = {"ETH": OraclePrice("ETH", 3600 * WAD, T0, True)}
    no_widening = margin_in_one_call([state], up, MarginParams(stale_range_multiplier=1.0))
    assert no_widening is not None
    assert no_widening.free_collateral_usd[0] * WAD > previous.free_collateral_wad
    assert next_attestation(state, no_widening, 0, SETTINGS, up) is None


def test_unhealthy_trader_gets_a_liquidation_plan_naming_chain_venue_and_leg() -> None:
    state = apply_proven(TraderState(trader=TRADER), book(20.0))  # 60k notional, 10k cash
    crash = {"ETH": OraclePrice("ETH", 2600 * WAD, T0, False)}
    result = margin_in_one_call([state], crash, PARAMS)
    assert result is not None and result.health[0] < 1.0
    attestation = next_attestation(state, result, 0, SETTINGS, crash)
    assert attestation is not None and attestation.health < 1.0
    order = liquidation_for(state, attestation, crash, PARAMS)
    assert order.sequence == attestation.sequence and order.health < 1.0
    assert [(leg.chain_id, leg.market, leg.size_wad) for leg in order.legs] == [
        (1, "ETH", 20 * WAD)]
    assert order.health_after >= 1.0


def test_circuit_breaker_opens_on_a_fast_move_and_closes_when_it_leaves_the_window() -> None:
    window: tuple[tuple[int, int], ...] = ()
    for t, usd in [(T0, 3000), (T0 + 60, 2950), (T0 + 120, 2650)]:
        window = apply_window(window, t, usd * WAD, 900)
    assert breaker_open(window, T0 + 120, 0.10, 900)  # −11.7% within 15 minutes
    assert not breaker_open(window, T0 + 120, 0.15, 900)
    window = apply_window(window, T0 + 2000, 2660 * WAD, 900)
    assert window == ((T0 + 2000, 2660 * WAD),) and not breaker_open(window, T0 + 2000, 0.1, 900)


def test_open_breaker_lets_credit_shrink_but_never_grow() -> None:
    state = first_attested()
    previous = state.last
    assert previous is not None
    for usd in (2700, 3300):
        price = {"ETH": OraclePrice("ETH", usd * WAD, T0, False, breaker=True)}
        result = margin_in_one_call([state], price, PARAMS)
        assert result is not None
        att = next_attestation(state, result, 0, SETTINGS, price)
        assert att is not None and att.prices[0].breaker
        assert att.chains[0].free_collateral_wad <= previous.free_collateral_wad
    # Without the breaker a rise may grow credit (by the paper profit beyond the hold-back).
    rise = {"ETH": OraclePrice("ETH", 6000 * WAD, T0, False)}
    result = margin_in_one_call([state], rise, PARAMS)
    assert result is not None
    free = next_attestation(state, result, 0, SETTINGS, rise)
    assert free is not None
    assert free.chains[0].free_collateral_wad > previous.free_collateral_wad


def test_an_unquoted_market_holds_back_only_its_holders() -> None:
    quotes = apply_quote({}, quote(3000, "a", T0))
    prices = oracle_prices(["ETH", "SOL"], quotes, T0, SETTINGS)
    assert set(prices) == {"ETH"}  # SOL has no quote yet
    eth_only = apply_proven(TraderState(trader=TRADER), book(1.0))
    with_sol = apply_proven(TraderState(trader="0x" + "ce" * 20), book(1.0).model_copy(update={
        "trader": "0x" + "ce" * 20,
        "positions": (Position(market="SOL", size_wad=10 * WAD, entry_price_wad=150 * WAD),)}))
    margins = margin_by_market_set([eth_only, with_sol], prices, PARAMS)
    assert margins[0] is not None and margins[1] is None
