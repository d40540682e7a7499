"""Deploying the contracts of one satellite chain (demo and tests)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import HTTPProvider, Web3

from relayer.contracts import compiled
from wire.commitment import market_bytes

# Initial margin a venue asks of new exposure, out of the globally attested free
# collateral: 20%, about what the engine's default scan gives a naked perp (16% × 1.25).
VENUE_INITIAL_MARGIN_BPS = 2000
# A borrow draws its value plus this share of it from the credit.
POOL_BORROW_MARGIN_BPS = 2000

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
    options: str = ""


def transact(w3: Web3, account: LocalAccount, call: Any) -> Any:
    tx = call.build_transaction({"from": account.address,
                                 "nonce": w3.eth.get_transaction_count(account.address, "pending")})
    tx_hash = w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.1)
    if receipt["status"] != 1:
        raise RuntimeError(f"transaction {tx_hash.hex()} reverted")
    return receipt


def deploy_contract(w3: Web3, account: LocalAccount, name: str, *args: Any) -> str:
    c = compiled(name)
    factory = w3.eth.contract(abi=c.abi, bytecode=c.bytecode)
    receipt = transact(w3, account, factory.constructor(*args))
    return str(receipt["contractAddress"]).lower()


def contract(w3: Web3, name: str, address: str) -> Any:
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=compiled(name).abi)


def deploy_chain(rpc_url: str, deployer: LocalAccount, signers: list[str], threshold: int,
                 prices: dict[str, int]) -> Deployment:
    """MarginOracle; PerpVenue, LendingPool and OptionVenue (each checking risk against
    the oracle); a PriceFeed per asset (8 decimals, first round = ``prices``)."""
    w3 = Web3(HTTPProvider(rpc_url))
    feeds = {}
    sorted_signers = [Web3.to_checksum_address(s) for s in signers]
    oracle = deploy_contract(w3, deployer, "MarginOracle", sorted_signers, threshold)
    venue = deploy_contract(w3, deployer, "PerpVenue", Web3.to_checksum_address(oracle),
                            VENUE_INITIAL_MARGIN_BPS)
    pool = deploy_contract(w3, deployer, "LendingPool", Web3.to_checksum_address(oracle),
                           POOL_BORROW_MARGIN_BPS)
    options = deploy_contract(w3, deployer, "OptionVenue", Web3.to_checksum_address(oracle),
                              VENUE_INITIAL_MARGIN_BPS)
    for asset, price_usd in prices.items():
        feed = deploy_contract(w3, deployer, "PriceFeed", market_bytes(asset), 8)
        transact(w3, deployer, contract(w3, "PriceFeed", feed).functions.submit(price_usd * 10**8))
        for name, address in (("PerpVenue", venue), ("LendingPool", pool),
                              ("OptionVenue", options)):
            transact(w3, deployer, contract(w3, name, address).functions.list_market(
                market_bytes(asset), Web3.to_checksum_address(feed)))
        feeds[asset] = feed
    return Deployment(chain_id=w3.eth.chain_id, rpc_url=rpc_url, oracle=oracle, venue=venue,
                      feeds=feeds, pool=pool, options=options)
