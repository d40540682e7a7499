"""Deploying the contracts of one satellite chain (demo and tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import HTTPProvider, Web3

from relayer.contracts import compiled
from relayer.delivery.sending import with_headroom
from wire.commitment import market_bytes

# Initial margin a venue asks of new exposure, out of the globally attested free
# collateral: 20%, about what the engine's default scan gives a naked perp (16% × 1.25).
VENUE_INITIAL_MARGIN_BPS = 2000
# A borrow draws its value plus this share of it from the credit.
POOL_BORROW_MARGIN_BPS = 2000
# A liquidation charges 1% of the closed notional, half to the caller, half to the
# venue's insurance fund; the spread is capped at 1.5 x the venue's maintenance rate.
LIQUIDATION_PENALTY_BPS = 100
LIQUIDATOR_SHARE_BPS = 5000
VENUE_MAINTENANCE_BPS = 1000
# The caller is first paid its gas (this much gas at the transaction's gas price, priced
# by the ETH feed) plus a minimum of 2 USDC.
KEEPER_GAS = 400_000
MIN_KEEPER_REWARD = 2 * 10**6
GAS_MARKET = "ETH"
# The first round of each asset's implied volatility feed (annualised).
IMPLIED_VOLS = {"BTC": 0.5, "ETH": 0.6}
# A venue refuses a price older than this (the local nets' feeds move when told to).
MAX_PRICE_AGE_S = 86_400
# The collateral token: USDC's shape. The pool's assets keep their usual decimals.
USDC_DECIMALS = 6
ASSET_DECIMALS = {"BTC": 8}  # every other asset: 18
# Lending rates per second (18 decimals): 2% a year at rest, +20% at full utilisation.
YEAR_S = 365 * 86_400
POOL_BASE_RATE = 2 * 10**16 // YEAR_S
POOL_SLOPE = 20 * 10**16 // YEAR_S
# What the deployer seeds each venue with (token units): the house (every trader's
# counterparty) and the insurance fund.
HOUSE_FUNDS = 10_000_000 * 10**USDC_DECIMALS
INSURANCE_FUNDS = 100_000 * 10**USDC_DECIMALS

# anvil's development accounts (its default mnemonic), funded on local chains only.
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"


def anvil_account(index: int) -> LocalAccount:
    Account.enable_unaudited_hdwallet_features()
    return Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")


@dataclass(frozen=True)
class Deployment:
    chain_id: int
    rpc_url: str
    oracle: str
    venue: str
    feeds: dict[str, str]
    pool: str = ""
    vol_feeds: dict[str, str] = field(default_factory=dict)  # implied volatility feeds
    options: str = ""
    ledger: str = ""
    token: str = ""  # the collateral stablecoin
    assets: dict[str, str] = field(default_factory=dict)  # the pool's asset tokens

    @property
    def venues(self) -> dict[str, str]:
        """Contract name → address of every venue that holds the stablecoin."""
        return {"PerpVenue": self.venue, "LendingPool": self.pool, "OptionVenue": self.options}


def transact(w3: Web3, account: LocalAccount, call: Any) -> Any:
    # Estimated against the pending block, where the transaction lands: a contract that
    # reads block.number (a per-block cap) may cost or answer differently at the latest.
    gas = call.estimate_gas({"from": account.address}, block_identifier="pending")
    tx = call.build_transaction({"from": account.address, "gas": with_headroom(gas),
                                 "nonce": w3.eth.get_transaction_count(account.address, "pending")})
    tx_hash = w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.1)
    if receipt["status"] != 1:
        raise RuntimeError(f"transaction {tx_hash.hex()} reverted")
    return receipt


def send_native(w3: Web3, account: LocalAccount, to: str, wei: int) -> None:
    """A plain transfer of the chain's native token (gas money for another account)."""
    tx: dict[str, Any] = {"to": Web3.to_checksum_address(to), "value": wei, "gas": 21_000,
          "gasPrice": w3.eth.gas_price * 2, "chainId": w3.eth.chain_id,
          "nonce": w3.eth.get_transaction_count(account.address, "pending")}
    tx_hash = w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
    if w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.1)["status"] != 1:
        raise RuntimeError(f"transfer {tx_hash.hex()} failed")


def deploy_contract(w3: Web3, account: LocalAccount, name: str, *args: Any) -> str:
    c = compiled(name)
    factory = w3.eth.contract(abi=c.abi, bytecode=c.bytecode)
    receipt = transact(w3, account, factory.constructor(*args))
    return str(receipt["contractAddress"]).lower()


def contract(w3: Web3, name: str, address: str) -> Any:
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=compiled(name).abi)


def deploy_chain(rpc_url: str, deployer: LocalAccount, signers: list[str], threshold: int,
                 prices: dict[str, int]) -> Deployment:
    """MarginOracle and its CreditLedger; a 6-decimal stablecoin; PerpVenue, LendingPool
    and OptionVenue (each drawing new risk from the ledger), the perp and option venues
    seeded with house and insurance funds; per asset a PriceFeed (8 decimals, first
    round = ``prices``), an implied volatility feed of the same shape and, for the pool,
    a token."""
    w3 = Web3(HTTPProvider(rpc_url))
    sorted_signers = [Web3.to_checksum_address(s) for s in signers]
    oracle = deploy_contract(w3, deployer, "MarginOracle", sorted_signers, threshold)
    ledger = deploy_contract(w3, deployer, "CreditLedger", Web3.to_checksum_address(oracle))
    token = deploy_contract(w3, deployer, "Token", "USD Coin", "USDC", USDC_DECIMALS)
    at = Web3.to_checksum_address
    liquidation = (VENUE_MAINTENANCE_BPS, LIQUIDATION_PENALTY_BPS, LIQUIDATOR_SHARE_BPS)
    venue = deploy_contract(w3, deployer, "PerpVenue", at(ledger), at(token),
                            VENUE_INITIAL_MARGIN_BPS, *liquidation)
    pool = deploy_contract(w3, deployer, "LendingPool", at(ledger), at(token),
                           POOL_BORROW_MARGIN_BPS, *liquidation)
    options = deploy_contract(w3, deployer, "OptionVenue", at(ledger), at(token),
                              VENUE_INITIAL_MARGIN_BPS, *liquidation)
    credit = contract(w3, "CreditLedger", ledger)
    for address in (venue, pool, options):
        transact(w3, deployer, credit.functions.register(at(address)))
    feeds, assets, vol_feeds = {}, {}, {}
    for asset, price_usd in prices.items():
        feed = deploy_contract(w3, deployer, "PriceFeed", market_bytes(asset), 8)
        transact(w3, deployer, contract(w3, "PriceFeed", feed).functions.submit(price_usd * 10**8))
        name = market_bytes(asset)
        assets[asset] = deploy_contract(w3, deployer, "Token", f"Wrapped {asset}", f"W{asset}",
                                        ASSET_DECIMALS.get(asset, 18))
        transact(w3, deployer, contract(w3, "PerpVenue", venue).functions.list_market(
            name, at(feed), MAX_PRICE_AGE_S))
        transact(w3, deployer, contract(w3, "OptionVenue", options).functions.list_market(
            name, at(feed), MAX_PRICE_AGE_S))
        transact(w3, deployer, contract(w3, "LendingPool", pool).functions.list_market(
            name, at(feed), MAX_PRICE_AGE_S, at(assets[asset]), POOL_BASE_RATE, POOL_SLOPE))
        feeds[asset] = feed
        # A DVOL-like index of the asset's 30-day implied volatility, 8 decimals.
        vol_feeds[asset] = deploy_contract(w3, deployer, "PriceFeed",
                                           market_bytes(f"{asset}-IV"), 8)
        transact(w3, deployer, contract(w3, "PriceFeed", vol_feeds[asset]).functions.submit(
            round(IMPLIED_VOLS.get(asset, 0.8) * 10**8)))
    if GAS_MARKET in prices:
        for kind, address in (("PerpVenue", venue), ("OptionVenue", options),
                              ("LendingPool", pool)):
            transact(w3, deployer, contract(w3, kind, address).functions.set_keeper_reward(
                KEEPER_GAS, MIN_KEEPER_REWARD, market_bytes(GAS_MARKET)))
    d = Deployment(chain_id=w3.eth.chain_id, rpc_url=rpc_url, oracle=oracle, venue=venue,
                   feeds=feeds, pool=pool, options=options, ledger=ledger, token=token,
                   assets=assets, vol_feeds=vol_feeds)
    usdc = contract(w3, "Token", token)
    transact(w3, deployer, usdc.functions.mint(deployer.address, 2 * HOUSE_FUNDS + INSURANCE_FUNDS))
    for kind, funded in (("PerpVenue", venue), ("OptionVenue", options)):
        transact(w3, deployer, usdc.functions.approve(at(funded), 2**256 - 1))
        transact(w3, deployer, contract(w3, kind, funded).functions.fund_house(HOUSE_FUNDS))
    transact(w3, deployer, contract(w3, "PerpVenue", venue).functions.fund_insurance(
        INSURANCE_FUNDS))
    return d


def fund(w3: Web3, d: Deployment, deployer: LocalAccount, trader: LocalAccount,
         usdc: int, assets: dict[str, int] | None = None) -> None:
    """Mint ``usdc`` stablecoin units (and asset token units) to ``trader`` and approve
    every venue to take them: what a trader's wallet holds before depositing."""
    at = Web3.to_checksum_address
    token = contract(w3, "Token", d.token)
    if usdc:
        transact(w3, deployer, token.functions.mint(trader.address, usdc))
    for address in d.venues.values():
        if token.functions.allowance(trader.address, at(address)).call() == 0:
            transact(w3, trader, token.functions.approve(at(address), 2**256 - 1))
    for asset, amount in (assets or {}).items():
        asset_token = contract(w3, "Token", d.assets[asset])
        transact(w3, deployer, asset_token.functions.mint(trader.address, amount))
        transact(w3, trader, asset_token.functions.approve(at(d.pool), 2**256 - 1))
