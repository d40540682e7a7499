"""Money that moves, on a real anvil chain with a real 6-decimal ERC-20: custody,
realized P&L to the wei, the shared credit ledger, stale prices, the EIP-712 domain
after a fork, liquidation with its penalty and caps, the bad-debt backstop, interest
and option settlement. Every test ends by checking that each venue holds exactly the
tokens its books say it holds."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import HTTPProvider, Web3
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD

from devnet.deploy import (
    KEEPER_GAS,
    LIQUIDATION_PENALTY_BPS,
    LIQUIDATOR_SHARE_BPS,
    MAX_PRICE_AGE_S,
    MIN_KEEPER_REWARD,
    VENUE_INITIAL_MARGIN_BPS,
    VENUE_MAINTENANCE_BPS,
    Deployment,
    anvil_account,
    contract,
    deploy_chain,
    deploy_contract,
    fund,
    transact,
)
from devnet.hedge import set_price
from devnet.localnet import LocalNet
from relayer.delivery.signing import sign_digest, threshold_signatures
from tests.support.credit import attest, keeper_reward, new_account
from wire.commitment import book_commitment, market_bytes
from wire.eip712 import attestation_digest
from wire.records import Position

pytestmark = pytest.mark.integration
WAD = 10**18
USDC = 10**6
UNIT_WAD = WAD // USDC  # one stablecoin unit in the venues' 18-decimal accounting
SIGNERS = [Account.create() for _ in range(3)]
ETH, BTC, JELLY = market_bytes("ETH"), market_bytes("BTC"), market_bytes("JELLY")
DEPLOYER = anvil_account(0)


@pytest.fixture(scope="module")
def chain(localnet: LocalNet) -> Iterator[tuple[Web3, Deployment]]:
    url = localnet.chain(41020, block_time_s=None)
    d = deploy_chain(url, DEPLOYER, [s.address for s in SIGNERS], 2,
                     {"ETH": 3000, "BTC": 60_000, "JELLY": 1})
    yield Web3(HTTPProvider(url)), d


def trader_with(w3: Web3, d: Deployment, usdc: int, venue: str = "PerpVenue") -> LocalAccount:
    """A fresh trader who deposited ``usdc`` token units on ``venue``."""
    trader = new_account(w3)
    fund(w3, d, DEPLOYER, trader, usdc)
    if usdc:
        transact(w3, trader, contract(w3, venue, d.venues[venue]).functions.deposit(usdc))
    return trader


def balance(w3: Web3, token: str, who: str) -> int:
    return int(contract(w3, "Token", token).functions.balanceOf(
        Web3.to_checksum_address(who)).call())


def cash_by_trader(w3: Web3, venue_name: str, address: str) -> dict[str, int]:
    """Every trader's cash on the venue (token units), from its book events, each
    checked against what the venue's storage holds now."""
    v = contract(w3, venue_name, address)
    event = (v.events.OptionPositionChanged if venue_name == "OptionVenue"
             else v.events.PositionChanged)
    latest = {e.args.trader: int(e.args.collateral) for e in event().get_logs(from_block=0)}
    for trader, cash_wad in latest.items():
        assert cash_wad == int(v.functions.cash(trader).call()) * UNIT_WAD
    return {t: c // UNIT_WAD for t, c in latest.items()}


def assert_conserved(w3: Web3, d: Deployment, venue_name: str, address: str) -> None:
    """The venue holds exactly every trader's cash plus its own funds, to the unit."""
    v = contract(w3, venue_name, address)
    claims = sum(cash_by_trader(w3, venue_name, address).values())
    claims += int(v.functions.insurance_fund().call())
    if venue_name != "LendingPool":
        claims += int(v.functions.house().call())
    if venue_name == "PerpVenue":
        claims += int(v.functions.liquidator_reserve().call())
    assert balance(w3, d.token, address) == claims


def flag(w3: Web3, d: Deployment, trader: str, valid_for_s: int = 3600) -> None:
    """An attestation that finds the trader below maintenance margin."""
    attest(w3, d, SIGNERS, 2, trader, free_usd=0, equity_usd=900, mm_usd=1_000,
           valid_for_s=valid_for_s)


def reverts(call: Any, sender: str, reason: str) -> None:
    with pytest.raises(ContractLogicError, match=reason):
        call.call({"from": sender}, block_identifier="pending")


def test_deposit_trade_reduce_flip_withdraw_move_tokens_to_the_wei(
        chain: tuple[Web3, Deployment]) -> None:
    w3, d = chain
    venue = contract(w3, "PerpVenue", d.venue)
    house_before = int(venue.functions.house().call())
    held_before = balance(w3, d.token, d.venue)
    trader = trader_with(w3, d, 10_000 * USDC)
    me = trader.address
    assert balance(w3, d.token, me) == 0
    assert balance(w3, d.token, d.venue) == held_before + 10_000 * USDC
    attest(w3, d, SIGNERS, 2, me, free_usd=50_000)

    set_price(d, "ETH", 3000)
    transact(w3, trader, venue.functions.trade(ETH, 2 * WAD))
    set_price(d, "ETH", 3300)
    transact(w3, trader, venue.functions.trade(ETH, WAD))
    # Average entry: (2 × 3000 + 1 × 3300) / 3 = 3100, exactly.
    assert venue.functions.positions(me).call() == [(ETH, 3 * WAD, 3100 * WAD)]
    set_price(d, "ETH", 3600.12345678)
    transact(w3, trader, venue.functions.trade(ETH, -3 * WAD // 2))
    # 1.5 × (3600.12345678 − 3100) = 750.18518517 USD: 750.185185 USDC, the last
    # 0.00000017 rounded down, against the trader.
    gain = 750_185_185
    assert venue.functions.cash(me).call() == 10_000 * USDC + gain
    assert venue.functions.house().call() == house_before - gain

    set_price(d, "ETH", 2999.99999999)
    transact(w3, trader, venue.functions.trade(ETH, -5 * WAD // 2))  # flip to short 1
    # The long 1.5 closes at a loss of 1.5 × 100.00000001 = 150.000000015 USD: rounded
    # up to 150.000001 USDC, again against the trader.
    loss = 150_000_001
    assert venue.functions.cash(me).call() == 10_000 * USDC + gain - loss
    assert venue.functions.positions(me).call() == [(ETH, -WAD, 299_999_999_999 * 10**10)]

    # Withdraw: only cash, and its value is drawn from the attested credit.
    transact(w3, trader, venue.functions.withdraw(5_000 * USDC))
    assert balance(w3, d.token, me) == 5_000 * USDC
    cash = 10_000 * USDC + gain - loss - 5_000 * USDC
    assert venue.functions.cash(me).call() == cash
    assert balance(w3, d.token, d.venue) == held_before + 10_000 * USDC - 5_000 * USDC
    positions = [Position(market="ETH", size_wad=-WAD, entry_price_wad=299_999_999_999 * 10**10)]
    on_chain = "0x" + venue.functions.commitment(me).call().hex().removeprefix("0x")
    assert book_commitment(me.lower(), cash * UNIT_WAD, positions) == on_chain
    assert_conserved(w3, d, "PerpVenue", d.venue)


def test_one_credit_line_is_spent_once_whichever_venue_spends_it(
        chain: tuple[Web3, Deployment]) -> None:
    w3, d = chain
    set_price(d, "ETH", 3000)
    lender = new_account(w3)
    fund(w3, d, DEPLOYER, lender, 0, {"ETH": 10 * WAD})
    transact(w3, lender, contract(w3, "LendingPool", d.pool).functions.supply(ETH, 10 * WAD))
    options = contract(w3, "OptionVenue", d.options)
    expiry = w3.eth.get_block("latest")["timestamp"] + 30 * 86_400
    put = (ETH, 2700 * WAD, expiry, False)
    transact(w3, DEPLOYER, options.functions.quote(*put, 90 * WAD))
    trader = trader_with(w3, d, 10_000 * USDC)
    me = trader.address
    attest(w3, d, SIGNERS, 2, me, free_usd=1_200)
    # 2 ETH at $3,000 × 20% = $1,200: the whole line.
    transact(w3, trader, contract(w3, "PerpVenue", d.venue).functions.trade(ETH, 2 * WAD))
    pool = contract(w3, "LendingPool", d.pool)
    reverts(pool.functions.borrow(ETH, WAD // 10), me, "insufficient free collateral")  # $360
    fund(w3, d, DEPLOYER, trader, 0)
    reverts(options.functions.trade(*put, -WAD // 100), me, "insufficient free collateral")
    ledger = contract(w3, "CreditLedger", d.ledger)
    assert ledger.functions.available(me).call() == 0
    assert ledger.functions.unseen(me).call() == 1_200 * WAD


def test_a_newer_attestation_forgives_no_draw_it_has_not_seen(
        chain: tuple[Web3, Deployment]) -> None:
    w3, d = chain
    set_price(d, "ETH", 3000)
    venue = contract(w3, "PerpVenue", d.venue)
    trader = trader_with(w3, d, 10_000 * USDC)
    me = trader.address
    attest(w3, d, SIGNERS, 2, me, free_usd=1_200)
    computed_at = w3.eth.block_number
    drawn_in = int(transact(w3, trader, venue.functions.trade(ETH, 2 * WAD))["blockNumber"])
    # Computed from blocks before the draw, so it does not include it: nothing to draw.
    attest(w3, d, SIGNERS, 2, me, free_usd=1_200, source_block=computed_at)
    reverts(venue.functions.trade(ETH, WAD // 10), me, "insufficient free collateral")
    # One that has seen the draw's block counts it in its figures: the line is fresh.
    attest(w3, d, SIGNERS, 2, me, free_usd=1_200, source_block=drawn_in)
    transact(w3, trader, venue.functions.trade(ETH, WAD // 10))
    assert contract(w3, "CreditLedger", d.ledger).functions.unseen(me).call() == 60 * WAD


def test_only_a_registered_venue_draws_on_the_ledger(chain: tuple[Web3, Deployment]) -> None:
    w3, d = chain
    ledger = contract(w3, "CreditLedger", d.ledger)
    stranger = new_account(w3)
    reverts(ledger.functions.draw(stranger.address, 1), stranger.address,
            "not a registered venue")
    reverts(ledger.functions.register(stranger.address), stranger.address, "only owner")


def test_liquidation_closes_what_is_named_at_the_feed_and_pays_the_penalty(
        chain: tuple[Web3, Deployment]) -> None:
    w3, d = chain
    set_price(d, "ETH", 3000)
    venue = contract(w3, "PerpVenue", d.venue)
    trader = trader_with(w3, d, 1_000 * USDC)
    me = trader.address
    attest(w3, d, SIGNERS, 2, me, free_usd=50_000)
    transact(w3, trader, venue.functions.trade(ETH, 2 * WAD))
    transact(w3, trader, venue.functions.trade(BTC, WAD // 100))
    keeper = new_account(w3)
    reverts(venue.functions.liquidate(me, ETH, WAD // 2), keeper.address, "trader is not flagged")

    set_price(d, "ETH", 2600)
    flag(w3, d, me)
    insurance = int(venue.functions.insurance_fund().call())
    receipt = transact(w3, keeper, venue.functions.liquidate(me, ETH, WAD // 2))
    # 0.5 ETH closed at $2,600: a realized loss of $200. The caller is paid its gas
    # (KEEPER_GAS at the transaction's gas price, in ETH at $2,600) plus $2; then the
    # penalty is 1% of the $1,300 closed, $13, half to the caller, half to the fund.
    reward = keeper_reward(w3, d, venue, receipt, 800 * USDC)
    gas_usd = KEEPER_GAS * receipt["effectiveGasPrice"] * 2600 / WAD
    assert MIN_KEEPER_REWARD + gas_usd * USDC <= reward <= MIN_KEEPER_REWARD + gas_usd * USDC + 1
    penalty = 1_300 * USDC * LIQUIDATION_PENALTY_BPS // 10_000
    to_keeper = penalty * LIQUIDATOR_SHARE_BPS // 10_000
    assert (penalty, to_keeper) == (13 * USDC, 6_500_000)
    assert venue.functions.cash(me).call() == 1_000 * USDC - 200 * USDC - reward - penalty
    assert balance(w3, d.token, keeper.address) == reward + to_keeper
    assert venue.functions.insurance_fund().call() == insurance + penalty - to_keeper
    event = venue.events.Liquidated().process_receipt(receipt, errors=DISCARD)[0].args
    assert (event.reward, event.penalty, event.to_liquidator) == (
        reward, penalty, reward + to_keeper)
    held = {p[0]: p[1] for p in venue.functions.positions(me).call()}
    assert held == {ETH: 3 * WAD // 2, BTC: WAD // 100}  # the rest of the leg, the other leg
    reverts(venue.functions.liquidate(me, market_bytes("SOL"), WAD), keeper.address,
            "no such position")
    assert_conserved(w3, d, "PerpVenue", d.venue)


def test_the_keepers_reward_is_capped_by_the_margin_and_charges_never_pass_bankruptcy(
        chain: tuple[Web3, Deployment]) -> None:
    w3, d = chain
    set_price(d, "ETH", 3000)
    venue = contract(w3, "PerpVenue", d.venue)
    trader = trader_with(w3, d, 100 * USDC)
    attest(w3, d, SIGNERS, 2, trader.address, free_usd=50_000)
    transact(w3, trader, venue.functions.trade(ETH, WAD))
    set_price(d, "ETH", 2901)
    flag(w3, d, trader.address)
    keeper = new_account(w3)
    insurance = int(venue.functions.insurance_fund().call())
    receipt = transact(w3, keeper, venue.functions.liquidate(trader.address, ETH, WAD))
    # $99 realized leaves $1 here: the reward (at least $2 plus gas) is cut to that $1,
    # and no penalty is left to charge. The close never takes cash below zero.
    event = venue.events.Liquidated().process_receipt(receipt, errors=DISCARD)[0].args
    assert (event.reward, event.penalty, event.to_liquidator) == (USDC, 0, USDC)
    assert keeper_reward(w3, d, venue, receipt, USDC) == USDC
    assert venue.functions.cash(trader.address).call() == 0
    assert balance(w3, d.token, keeper.address) == USDC
    assert venue.functions.insurance_fund().call() == insurance
    assert_conserved(w3, d, "PerpVenue", d.venue)


def test_a_liquidation_spread_above_one_and_a_half_maintenance_is_refused(
        chain: tuple[Web3, Deployment]) -> None:
    w3, d = chain
    at = Web3.to_checksum_address
    for name, margin in (("PerpVenue", VENUE_INITIAL_MARGIN_BPS), ("OptionVenue", 2000),
                         ("LendingPool", 2000)):
        with pytest.raises(ContractLogicError, match=r"penalty above 1\.5 x maintenance"):
            deploy_contract(w3, DEPLOYER, name, at(d.ledger), at(d.token), margin,
                            200, 301, LIQUIDATOR_SHARE_BPS)
        deploy_contract(w3, DEPLOYER, name, at(d.ledger), at(d.token), margin, 200, 300,
                        LIQUIDATOR_SHARE_BPS)


def test_a_stale_flag_liquidates_nobody(chain: tuple[Web3, Deployment]) -> None:
    w3, d = chain
    set_price(d, "ETH", 3000)
    venue = contract(w3, "PerpVenue", d.venue)
    trader = trader_with(w3, d, 1_000 * USDC)
    attest(w3, d, SIGNERS, 2, trader.address, free_usd=50_000)
    transact(w3, trader, venue.functions.trade(ETH, WAD))
    flag(w3, d, trader.address, valid_for_s=30)
    oracle = contract(w3, "MarginOracle", d.oracle)
    assert oracle.functions.is_liquidatable(trader.address).call() is True
    w3.provider.make_request("evm_increaseTime", [31])
    w3.provider.make_request("evm_mine", [])
    assert oracle.functions.is_liquidatable(trader.address).call() is False
    reverts(venue.functions.liquidate(trader.address, ETH, WAD), DEPLOYER.address,
            "trader is not flagged")


def test_liquidated_notional_is_capped_per_block_and_window_but_for_approved_liquidators(
        chain: tuple[Web3, Deployment]) -> None:
    w3, d = chain
    set_price(d, "ETH", 3000)
    venue = contract(w3, "PerpVenue", d.venue)
    trader = trader_with(w3, d, 5_000 * USDC)
    attest(w3, d, SIGNERS, 2, trader.address, free_usd=50_000)
    transact(w3, trader, venue.functions.trade(ETH, 4 * WAD))
    flag(w3, d, trader.address)
    transact(w3, DEPLOYER, venue.functions.set_liquidation_limits(
        5_000 * WAD, 3_600, 7_000 * WAD, 0))
    try:
        keeper, approved = new_account(w3), new_account(w3)
        reverts(venue.functions.liquidate(trader.address, ETH, 2 * WAD), keeper.address,
                "block liquidation cap")  # $6,000 in one block
        transact(w3, keeper, venue.functions.liquidate(trader.address, ETH, WAD))  # $3,000
        transact(w3, keeper, venue.functions.liquidate(trader.address, ETH, WAD))  # $6,000
        reverts(venue.functions.liquidate(trader.address, ETH, WAD), keeper.address,
                "window liquidation cap")  # $9,000 in the hour
        transact(w3, DEPLOYER, venue.functions.approve_liquidator(approved.address, True))
        transact(w3, approved, venue.functions.liquidate(trader.address, ETH, 2 * WAD))
        assert venue.functions.positions(trader.address).call() == []
    finally:
        transact(w3, DEPLOYER, venue.functions.set_liquidation_limits(0, 0, 0, 0))


def own_venue(w3: Web3, d: Deployment, insurance: int, reserve: int, reserve_cap: int) -> str:
    """A PerpVenue of its own on the test chain (ETH listed, registered with the
    ledger, a house of 10,000 USDC), its backstop funded as given (token units)."""
    at = Web3.to_checksum_address
    address = deploy_contract(w3, DEPLOYER, "PerpVenue", at(d.ledger), at(d.token),
                              VENUE_INITIAL_MARGIN_BPS, VENUE_MAINTENANCE_BPS,
                              LIQUIDATION_PENALTY_BPS, LIQUIDATOR_SHARE_BPS)
    venue = contract(w3, "PerpVenue", address)
    transact(w3, DEPLOYER, contract(w3, "CreditLedger", d.ledger).functions.register(at(address)))
    transact(w3, DEPLOYER, venue.functions.list_market(ETH, at(d.feeds["ETH"]), MAX_PRICE_AGE_S))
    usdc = contract(w3, "Token", d.token)
    transact(w3, DEPLOYER, usdc.functions.mint(DEPLOYER.address,
                                               insurance + reserve + 10_000 * USDC))
    transact(w3, DEPLOYER, usdc.functions.approve(at(address), 2**256 - 1))
    transact(w3, DEPLOYER, venue.functions.fund_house(10_000 * USDC))
    if insurance:
        transact(w3, DEPLOYER, venue.functions.fund_insurance(insurance))
    if reserve:
        transact(w3, DEPLOYER, venue.functions.fund_reserve(reserve))
    transact(w3, DEPLOYER, venue.functions.set_liquidation_limits(0, 0, 0, reserve_cap))
    return address


def on_venue(w3: Web3, d: Deployment, address: str, usdc: int) -> LocalAccount:
    """A fresh trader who deposited ``usdc`` token units on the venue at ``address``."""
    trader = new_account(w3)
    fund(w3, d, DEPLOYER, trader, usdc)
    token = contract(w3, "Token", d.token)
    transact(w3, trader, token.functions.approve(Web3.to_checksum_address(address), 2**256 - 1))
    transact(w3, trader, contract(w3, "PerpVenue", address).functions.deposit(usdc))
    return trader


@pytest.mark.parametrize("insurance, reserve, cap, covered", [
    (2_000, 0, 0, "insurance"),         # the fund covers the whole deficit
    (300, 1_000, 0, "reserve"),         # the fund, then the reserve
    (300, 1_000, 150, "recorded"),      # the reserve is capped: the rest is recorded
])
def test_bad_debt_is_covered_in_the_written_order_and_what_remains_is_recorded(
        chain: tuple[Web3, Deployment], insurance: int, reserve: int, cap: int,
        covered: str) -> None:
    w3, d = chain
    set_price(d, "ETH", 3000)
    # A venue of its own, so its insurance fund and reserve are as the case says.
    address = own_venue(w3, d, insurance * USDC, reserve * USDC, cap * USDC)
    venue = contract(w3, "PerpVenue", address)
    trader = on_venue(w3, d, address, 100 * USDC)
    attest(w3, d, SIGNERS, 2, trader.address, free_usd=50_000)
    transact(w3, trader, venue.functions.trade(ETH, WAD))
    set_price(d, "ETH", 2000)  # a $1,000 loss on $100 of cash
    flag(w3, d, trader.address)
    receipt = transact(w3, DEPLOYER, venue.functions.liquidate(trader.address, ETH, WAD))
    (event,) = venue.events.BadDebt().process_receipt(receipt, errors=DISCARD)
    deficit = 900 * USDC  # no penalty: the trader has no cash left to pay it
    from_insurance = min(deficit, insurance * USDC)
    from_reserve = min(deficit - from_insurance, reserve * USDC, cap * USDC or 2**256)
    uncovered = deficit - from_insurance - from_reserve
    assert (event.args.deficit, event.args.from_insurance, event.args.from_reserve,
            event.args.uncovered) == (deficit, from_insurance, from_reserve, uncovered)
    assert {"insurance": uncovered == 0 and from_reserve == 0,
            "reserve": uncovered == 0 and from_reserve > 0,
            "recorded": uncovered > 0}[covered]
    assert venue.functions.bad_debt_of(trader.address).call() == uncovered
    assert venue.functions.bad_debt().call() == uncovered
    assert venue.functions.cash(trader.address).call() == -uncovered
    assert_conserved(w3, d, "PerpVenue", address)


def test_after_a_recorded_bad_debt_deleveraging_is_proposed_by_profit_times_leverage(
        chain: tuple[Web3, Deployment]) -> None:
    w3, d = chain
    set_price(d, "ETH", 3000)
    address = own_venue(w3, d, 0, 0, 0)  # no backstop: the whole deficit is recorded
    venue = contract(w3, "PerpVenue", address)
    bankrupt = on_venue(w3, d, address, 100 * USDC)
    levered, calm = on_venue(w3, d, address, 500 * USDC), on_venue(w3, d, address, 500 * USDC)
    attest(w3, d, SIGNERS, 2, bankrupt.address, free_usd=50_000)
    attest(w3, d, SIGNERS, 2, levered.address, free_usd=50_000, equity_usd=1_000)
    attest(w3, d, SIGNERS, 2, calm.address, free_usd=50_000, equity_usd=10_000)
    transact(w3, bankrupt, venue.functions.trade(ETH, 2 * WAD))
    transact(w3, levered, venue.functions.trade(ETH, -WAD))
    transact(w3, calm, venue.functions.trade(ETH, -2 * WAD))
    set_price(d, "ETH", 2000)
    flag(w3, d, bankrupt.address)
    transact(w3, DEPLOYER, venue.functions.liquidate(bankrupt.address, ETH, 2 * WAD))
    assert venue.functions.bad_debt().call() == 1_900 * USDC  # $2,000 lost on $100 of cash
    books = {t.address: venue.functions.positions(t.address).call() for t in (levered, calm)}

    run = subprocess.run([sys.executable, "-m", "xmargin.cli", "adl", "--rpc-url", d.rpc_url,
                          "--venue", address, "--json"],
                         capture_output=True, text=True, timeout=60, check=True)
    out = json.loads(run.stdout)
    # Ranked by profit / cost x notional / attested equity: the 1-ETH short on $1,000 of
    # equity (1/3 x 2 = 0.667) before the 2-ETH short on $10,000 (1/3 x 0.4 = 0.133).
    # The first gives its whole $1,000 profit, the second 0.9 ETH of its 2 ($900).
    assert out["bad_debt_wad"] == 1_900 * WAD and out["uncovered_wad"] == 0
    assert [(s["trader"], s["close_wad"], s["profit_wad"], s["haircut_wad"])
            for s in out["steps"]] == [
        (levered.address.lower(), -WAD, 1_000 * WAD, 1_000 * WAD),
        (calm.address.lower(), -9 * WAD // 10, 900 * WAD, 900 * WAD)]
    assert out["steps"][0]["score"] == pytest.approx(2 / 3)
    # A proposal, not an execution: the debt stays recorded and every book as it was.
    assert venue.functions.bad_debt().call() == 1_900 * USDC
    assert {t: venue.functions.positions(t).call() for t in books} == books
    assert_conserved(w3, d, "PerpVenue", address)


def test_a_trade_on_a_stale_round_reverts(chain: tuple[Web3, Deployment]) -> None:
    w3, d = chain
    venue = contract(w3, "PerpVenue", d.venue)
    trader = trader_with(w3, d, 1_000 * USDC)
    set_price(d, "ETH", 3000)
    w3.provider.make_request("evm_increaseTime", [MAX_PRICE_AGE_S + 1])
    w3.provider.make_request("evm_mine", [])
    attest(w3, d, SIGNERS, 2, trader.address, free_usd=50_000)
    reverts(venue.functions.trade(ETH, WAD), trader.address, "stale price")
    set_price(d, "ETH", 3000)  # a fresh round
    transact(w3, trader, venue.functions.trade(ETH, WAD))
    for asset in ("BTC", "JELLY"):  # fresh rounds for the tests after this one
        set_price(d, asset, {"BTC": 60_000, "JELLY": 1}[asset])


def test_unrealized_profit_is_not_cash(chain: tuple[Web3, Deployment]) -> None:
    """The Mango / JELLY pattern: pump a thin market, then take the paper gain out."""
    w3, d = chain
    set_price(d, "JELLY", 1)
    venue = contract(w3, "PerpVenue", d.venue)
    trader = trader_with(w3, d, 1_000 * USDC)
    me = trader.address
    attest(w3, d, SIGNERS, 2, me, free_usd=1_000_000)
    transact(w3, trader, venue.functions.trade(JELLY, 2_000 * WAD))  # $2,000 of JELLY
    set_price(d, "JELLY", 10)  # pumped ten times: +$18,000 on paper
    reverts(venue.functions.withdraw(1_001 * USDC), me, "withdraws more than cash")
    # Even of the cash, what covers max(IM, 10% of notional) = $4,000 here stays back,
    # and the paper profit does not count towards it.
    reverts(venue.functions.withdraw(1 * USDC), me, "unrealized profit is not cash")
    set_price(d, "JELLY", 1)
    transact(w3, trader, venue.functions.withdraw(600 * USDC))  # $400 stays: 20% of $2,000
    reverts(venue.functions.withdraw(1 * USDC), me, "unrealized profit is not cash")


def test_the_eip712_domain_follows_the_chain_id_after_a_fork(
        chain: tuple[Web3, Deployment]) -> None:
    w3, d = chain
    oracle = contract(w3, "MarginOracle", d.oracle)
    trader = Account.create().address.lower()
    now = w3.eth.get_block("latest")["timestamp"]
    f = dict(sequence=1, equity_wad=WAD, maintenance_margin_wad=0, initial_margin_wad=0,
             free_collateral_wad=WAD, params_version=1, source_blocks_hash=b"\x42" * 32,
             source_block=0, valid_until=now + 3600)
    struct = (Web3.to_checksum_address(trader), *f.values())

    def signed(chain_id: int) -> list[bytes]:
        digest = attestation_digest(chain_id=chain_id, oracle=bytes.fromhex(d.oracle[2:]),
                                    trader=bytes.fromhex(trader[2:]), **f)
        return threshold_signatures([sign_digest(s, digest) for s in SIGNERS], 2)

    old = signed(d.chain_id)
    oracle.functions.submit(struct, old).call()  # verifies before the fork
    w3.provider.make_request("anvil_setChainId", [d.chain_id + 1000])
    try:
        with pytest.raises(ContractLogicError, match="unknown signer"):
            oracle.functions.submit(struct, old).call()
        oracle.functions.submit(struct, signed(d.chain_id + 1000)).call()
    finally:
        w3.provider.make_request("anvil_setChainId", [d.chain_id])
    oracle.functions.submit(struct, old).call()


def test_interest_accrues_by_index_and_borrows_are_liquidated_in_tokens(
        chain: tuple[Web3, Deployment]) -> None:
    w3, d = chain
    set_price(d, "ETH", 3000)
    pool = contract(w3, "LendingPool", d.pool)
    lender = new_account(w3)
    fund(w3, d, DEPLOYER, lender, 0, {"BTC": 2 * 10**8})
    transact(w3, lender, pool.functions.supply(BTC, 2 * 10**8))
    trader = trader_with(w3, d, 5_000 * USDC, "LendingPool")
    me = trader.address
    attest(w3, d, SIGNERS, 2, me, free_usd=50_000)
    borrowed = transact(w3, trader, pool.functions.borrow(BTC, 10**7))  # 0.1 BTC, WBTC units
    assert balance(w3, d.assets["BTC"], me) == 10**7
    debt0 = -pool.functions.positions(me).call()[0][1]
    rate = pool.functions.borrow_rate(BTC).call()
    month = 30 * 86_400
    w3.provider.make_request("evm_increaseTime", [month])
    w3.provider.make_request("evm_mine", [])
    poked = transact(w3, DEPLOYER, pool.functions.poke(me))
    debt1 = -pool.functions.positions(me).call()[0][1]
    elapsed = (w3.eth.get_block(poked["blockNumber"])["timestamp"]
               - w3.eth.get_block(borrowed["blockNumber"])["timestamp"])
    assert elapsed >= month
    # One accrual over the month at the utilisation-based rate, rounded up (a few wei).
    interest = debt0 * rate * elapsed // WAD
    assert rate > 0 and interest <= debt1 - debt0 <= interest + 10
    set_price(d, "BTC", 60_000)
    set_price(d, "ETH", 3000)

    flag(w3, d, me)
    keeper = new_account(w3)
    fund(w3, d, DEPLOYER, keeper, 0, {"BTC": 5 * 10**6})
    cash0 = pool.functions.cash(me).call()
    receipt = transact(w3, keeper, pool.functions.liquidate(me, BTC, 5 * 10**6))  # 0.05 BTC
    # The keeper is paid the debt's value ($3,000), its reward and half the 1% penalty;
    # the insurance fund the other half; all of it out of the trader's cash.
    reward = keeper_reward(w3, d, pool, receipt, cash0 - 3_000 * USDC)
    assert balance(w3, d.token, keeper.address) == 3_000 * USDC + reward + 15 * USDC
    assert pool.functions.cash(me).call() == cash0 - 3_000 * USDC - reward - 30 * USDC
    assert balance(w3, d.assets["BTC"], keeper.address) == 0
    assert_conserved(w3, d, "LendingPool", d.pool)


def test_an_expired_series_settles_in_cash_and_a_written_leg_can_be_liquidated(
        chain: tuple[Web3, Deployment]) -> None:
    w3, d = chain
    set_price(d, "ETH", 3000)
    options = contract(w3, "OptionVenue", d.options)
    expiry = w3.eth.get_block("latest")["timestamp"] + 7 * 86_400
    call, put = (ETH, 3_100 * WAD, expiry, True), (ETH, 2_900 * WAD, expiry, False)
    transact(w3, DEPLOYER, options.functions.quote(*call, 50 * WAD))
    transact(w3, DEPLOYER, options.functions.quote(*put, 40 * WAD))
    buyer = trader_with(w3, d, 1_000 * USDC, "OptionVenue")
    writer = trader_with(w3, d, 1_000 * USDC, "OptionVenue")
    attest(w3, d, SIGNERS, 2, writer.address, free_usd=50_000)
    transact(w3, buyer, options.functions.trade(*call, 3 * WAD))     # pays 150
    transact(w3, writer, options.functions.trade(*put, -2 * WAD))    # receives 80
    assert options.functions.cash(buyer.address).call() == 850 * USDC
    assert options.functions.cash(writer.address).call() == 1_080 * USDC

    flag(w3, d, writer.address)
    keeper = new_account(w3)
    receipt = transact(w3, keeper, options.functions.liquidate(writer.address, *put, WAD))
    # Bought back 1 contract at the $40 quote; the keeper's reward, then a penalty of 1%
    # of the $3,000 notional = $30.
    reward = keeper_reward(w3, d, options, receipt, 1_040 * USDC)
    assert options.functions.cash(writer.address).call() == (
        1_080 * USDC - 40 * USDC - reward - 30 * USDC)
    assert balance(w3, d.token, keeper.address) == reward + 15 * USDC

    reverts(options.functions.settle(buyer.address, *call), keeper.address,
            "series has not expired")
    w3.provider.make_request("evm_increaseTime", [7 * 86_400 + 1])
    w3.provider.make_request("evm_mine", [])
    set_price(d, "ETH", 3_250.5)
    transact(w3, keeper, options.functions.settle(buyer.address, *call))  # anyone may
    # 3 × (3250.5 − 3100) = $451.50 to the buyer.
    assert options.functions.cash(buyer.address).call() == 850 * USDC + 451_500_000
    assert options.functions.positions(buyer.address).call() == []
    transact(w3, keeper, options.functions.settle(writer.address, *put))  # out of the money
    assert options.functions.cash(writer.address).call() == 1_010 * USDC - reward
    attest(w3, d, SIGNERS, 2, buyer.address, free_usd=50_000)  # a withdrawal draws credit
    transact(w3, buyer, options.functions.withdraw(1_301_500_000))
    assert balance(w3, d.token, buyer.address) == 1_301_500_000
    assert_conserved(w3, d, "OptionVenue", d.options)
    for asset in ("BTC", "JELLY"):
        set_price(d, asset, {"BTC": 60_000, "JELLY": 1}[asset])


def test_value_is_neither_created_nor_lost_through_random_trading(
        chain: tuple[Web3, Deployment]) -> None:
    """Seeded random deposits, trades, price moves, withdrawals and liquidations: after
    every step the venue holds exactly what its books say, and every token is somewhere."""
    w3, d = chain
    rng = random.Random(20261202)
    venue = contract(w3, "PerpVenue", d.venue)
    usdc = contract(w3, "Token", d.token)
    set_price(d, "ETH", 3000)
    traders = [trader_with(w3, d, rng.randrange(500, 5_000) * USDC + rng.randrange(USDC))
               for _ in range(3)]
    for t in traders:
        attest(w3, d, SIGNERS, 2, t.address, free_usd=10_000_000)
    supply = int(usdc.functions.totalSupply().call())
    done: dict[str, int] = {}
    for step in range(40):
        t = rng.choice(traders)
        action = rng.choice(["trade", "trade", "price", "withdraw", "deposit", "liquidate"])
        try:
            if action == "trade":
                size = rng.choice([-1, 1]) * rng.randrange(1, 3 * WAD)
                transact(w3, t, venue.functions.trade(ETH, size))
            elif action == "price":
                set_price(d, "ETH", round(rng.uniform(2_000, 4_000), 8))
            elif action == "withdraw":
                cash = int(venue.functions.cash(t.address).call())
                if cash > 0:
                    transact(w3, t, venue.functions.withdraw(rng.randrange(1, cash + 1)))
            elif action == "deposit":
                amount = rng.randrange(1, 1_000 * USDC)
                fund(w3, d, DEPLOYER, t, amount)
                supply += amount
                transact(w3, t, venue.functions.deposit(amount))
            else:
                held = venue.functions.positions(t.address).call()
                if held:
                    flag(w3, d, t.address)
                    transact(w3, DEPLOYER, venue.functions.liquidate(
                        t.address, ETH, rng.randrange(1, abs(held[0][1]) + 1)))
                    attest(w3, d, SIGNERS, 2, t.address, free_usd=10_000_000)
        except ContractLogicError:
            continue  # a refused step (a withdrawal the hold-back keeps back) moves nothing
        finally:
            assert_conserved(w3, d, "PerpVenue", d.venue)
        done[action] = done.get(action, 0) + 1
        assert int(usdc.functions.totalSupply().call()) == supply, f"step {step}"
    # The walk did move money every way it can.
    assert all(done.get(a, 0) >= 2 for a in ("trade", "price", "withdraw", "deposit",
                                            "liquidate")), done
