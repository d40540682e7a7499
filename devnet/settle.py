"""Act three of the demo (and the live settlement test): a loss realized on chain A larger
than the trader's cash there, paid from the trader's cash on chain B by the node's
settlement service: the order on the attestation, the attesters' signatures, the debit on
B, its header vouched for, the storage proof checked by A's vault, the credit on A."""

from __future__ import annotations

import time
from typing import Any

from eth_account import Account
from web3 import HTTPProvider, Web3

from devnet.deploy import USDC_DECIMALS, Deployment, anvil_account, contract, send_native
from devnet.hedge import (
    KEEPER_ACCOUNT,
    Network,
    deposit,
    read_price,
    set_price,
    trade,
    wait_for_credit,
)

USDC = 10**USDC_DECIMALS
SIZE = 5.0      # ETH long on A, short on B
MOVE = 0.06     # ETH falls this much: under the circuit breaker's 10 %
CASH_A, CASH_B = 100, 20_000  # USD deposited on each


def held(d: Deployment, vault: str, trader: str) -> dict[str, int]:
    """The trader's cash on the venue, and the tokens of every holder a settlement or
    anything else running meanwhile (a keeper's liquidation of another trader) moves
    tokens between: the venue, the vault, the keeper's and the trader's wallets."""
    w3 = Web3(HTTPProvider(d.rpc_url))
    token = contract(w3, "Token", d.token)
    at = Web3.to_checksum_address

    def tokens(who: str) -> int:
        return int(token.functions.balanceOf(at(who)).call())
    return {"cash_units": int(contract(w3, "PerpVenue", d.venue).functions.cash(
                at(trader)).call()),
            "venue_tokens_units": tokens(d.venue), "vault_tokens_units": tokens(vault),
            "wallet_tokens_units": tokens(anvil_account(KEEPER_ACCOUNT).address) + tokens(trader)}


def flows(d: Deployment, vault: str, event: str, trader: str) -> list[dict[str, Any]]:
    w3 = Web3(HTTPProvider(d.rpc_url))
    logs = getattr(contract(w3, "ClearingVault", vault).events, event)().get_logs(
        from_block=0, argument_filters={"trader": Web3.to_checksum_address(trader)})
    return [{"nonce": e["args"]["nonce"], "amount_units": e["args"]["amount"],
             "order_id": "0x" + bytes(e["args"]["order_id"]).hex(),
             "block": e["blockNumber"], "tx_hash": "0x" + bytes(e["transactionHash"]).hex(),
             "gas_used": int(w3.eth.get_transaction_receipt(e["transactionHash"])["gasUsed"])}
            for e in logs]


def run_settlement(network: Network, timeout_s: float = 180.0) -> dict[str, Any]:
    a, b = network.deployments[:2]
    vault_a, vault_b = network.vaults[:2]
    trader = Account.create()
    address = trader.address.lower()
    for d in (a, b):
        send_native(Web3(HTTPProvider(d.rpc_url)), anvil_account(0), trader.address, 10**18)
    deposit(a, trader, CASH_A)
    deposit(b, trader, CASH_B)
    price = read_price(a, "ETH")
    wait_for_credit((a, b), address, SIZE * price * 0.2 * 1.05, timeout_s)
    trade(a, trader, "ETH", SIZE)
    trade(b, trader, "ETH", -SIZE)
    for d in (a, b):
        set_price(d, "ETH", round(price * (1 - MOVE), 2))
    trade(a, trader, "ETH", -SIZE)  # closed at a loss: A's cash goes negative
    before = {"a": held(a, vault_a, address), "b": held(b, vault_b, address)}
    need = -before["a"]["cash_units"]
    deadline = time.monotonic() + timeout_s
    credits: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not credits:
        credits = flows(a, vault_a, "Credited", address)
        time.sleep(0.5)
    if not credits:
        raise TimeoutError(f"no settlement credited on {a.chain_id} within {timeout_s} s")
    after = {"a": held(a, vault_a, address), "b": held(b, vault_b, address)}
    total = {k: sum(v["venue_tokens_units"] + v["vault_tokens_units"]
                    + v["wallet_tokens_units"] for v in side.values())
             for k, side in (("before", before), ("after", after))}
    return {
        "trader": address,
        "loss_realized_on": a.chain_id, "paid_from": b.chain_id,
        "need_units": need,
        "debits": flows(b, vault_b, "Debited", address),
        "credits": credits,
        "before": before, "after": after,
        "tokens_total_units": total,
        "conserved": total["before"] == total["after"],
    }
