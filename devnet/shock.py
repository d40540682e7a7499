"""The second act of ``xmargin demo`` (and its end-to-end test): a price shock.

The hedged trader of the first act (long on chain A, short on chain B) is left alone;
a second, unhedged trader, long on both chains, falls below maintenance margin. The
node attests that, plans the liquidation, and its keeper closes the plan's legs on
their chains; the summary shows every token balance before and after, and each
liquidation's transaction.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import AIOKafkaConsumer
from eth_account.signers.local import LocalAccount
from web3 import HTTPProvider, Web3
from web3.logs import DISCARD

from devnet.deploy import USDC_DECIMALS, Deployment, anvil_account, contract
from devnet.hedge import (
    KEEPER_ACCOUNT,
    WAD,
    Network,
    open_positions,
    read_price,
    set_price,
    wait_for_netted_attestation,
)
from wire import topics
from wire.records import Delivery, Liquidation, RecordError, decode

UNHEDGED_ACCOUNT = 6
SHOCK = 0.35  # the price falls by this share on every chain at once


def venue_view(d: Deployment, trader: str) -> dict[str, Any]:
    """The trader's book on the chain's perp venue, and the tokens around it (units)."""
    w3 = Web3(HTTPProvider(d.rpc_url))
    venue = contract(w3, "PerpVenue", d.venue)
    token = contract(w3, "Token", d.token)
    who = Web3.to_checksum_address(trader)
    return {
        "chain_id": d.chain_id,
        "cash_units": int(venue.functions.cash(who).call()),
        "positions": {p[0].rstrip(b"\x00").decode(): {"size_wad": int(p[1]),
                                                      "entry_price_wad": int(p[2])}
                      for p in venue.functions.positions(who).call()},
        "wallet_units": int(token.functions.balanceOf(who).call()),
        "venue_tokens_units": int(token.functions.balanceOf(
            Web3.to_checksum_address(d.venue)).call()),
        "insurance_fund_units": int(venue.functions.insurance_fund().call()),
        "keeper_wallet_units": int(token.functions.balanceOf(
            anvil_account(KEEPER_ACCOUNT).address).call()),
    }


def tx_block(d: Deployment, tx_hash: str) -> int:
    w3 = Web3(HTTPProvider(d.rpc_url))
    return int(w3.eth.get_transaction_receipt(tx_hash)["blockNumber"])  # type: ignore[arg-type]


def liquidations_in(d: Deployment, tx_hash: str) -> list[dict[str, Any]]:
    """The ``Liquidated`` events of one transaction."""
    w3 = Web3(HTTPProvider(d.rpc_url))
    venue = contract(w3, "PerpVenue", d.venue)
    receipt = w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
    return [{"trader": e.args.trader.lower(), "liquidator": e.args.liquidator.lower(),
             "market": e.args.market.rstrip(b"\x00").decode(), "size_wad": int(e.args.size),
             "price_wad": int(e.args.price), "pnl_units": int(e.args.pnl),
             "reward_units": int(e.args.reward), "penalty_units": int(e.args.penalty),
             "to_liquidator_units": int(e.args.to_liquidator)}
            for e in venue.events.Liquidated().process_receipt(receipt, errors=DISCARD)]


async def wait_for_legs(bootstrap: str, trader: str, timeout_s: float
                        ) -> tuple[Liquidation, list[Delivery]]:
    """The first liquidation plan for ``trader`` and, once every one of its legs has
    ended, the keeper's delivery record of each."""
    consumer = AIOKafkaConsumer(topics.LIQUIDATION, topics.DELIVERY, bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    plan: Liquidation | None = None
    ended: dict[str, Delivery] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                for m in messages:
                    try:
                        if m.topic == topics.LIQUIDATION:
                            found = decode(Liquidation, m.value)
                            if found.trader == trader and plan is None:
                                plan = found
                        else:
                            d = decode(Delivery, m.value)
                            if d.trader == trader and d.leg:
                                ended.setdefault(f"{d.sequence}:{d.chain_id}:{d.leg}", d)
                    except RecordError:
                        continue
            if plan is not None:
                mine = [ended.get(f"{plan.sequence}:{leg.chain_id}:{leg.leg_id}")
                        for leg in plan.legs]
                if all(mine):
                    return plan, [d for d in mine if d is not None]
    finally:
        await consumer.stop()
    raise TimeoutError(f"no executed liquidation plan for {trader} within {timeout_s} s")


def run_shock(network: Network, hedged: str, timeout_s: float = 180.0) -> dict[str, Any]:
    """Open the unhedged trader, shock the price on every chain, and wait for the keeper
    to close the plan's legs; the summary."""
    a, b = network.deployments[:2]
    trader: LocalAccount = anvil_account(UNHEDGED_ACCOUNT)
    address = trader.address.lower()
    # Long 2 ETH on A and 0.5 on B: about 2.5 times leveraged, so a 35% fall takes
    # equity below maintenance margin.
    blocks = {a.chain_id: open_positions(a, trader, "ETH", collateral_usd=2_500, size=2.0,
                                         timeout_s=timeout_s),
              b.chain_id: open_positions(b, trader, "ETH", collateral_usd=500, size=0.5,
                                         timeout_s=timeout_s)}
    asyncio.run(wait_for_netted_attestation(network.bootstrap, address, blocks, timeout_s))
    before = {"unhedged": [venue_view(d, address) for d in (a, b)],
              "hedged": [venue_view(d, hedged) for d in (a, b)]}
    price = read_price(a, "ETH")
    shocked = round(price * (1 - SHOCK), 8)
    for d in network.deployments:
        set_price(d, "ETH", shocked)
    plan, legs = asyncio.run(wait_for_legs(network.bootstrap, address, timeout_s))
    by_chain = {d.chain_id: d for d in network.deployments}
    # The next attestation that has seen every liquidation's block.
    closed_in = {d.chain_id: tx_block(by_chain[d.chain_id], d.tx_hash) for d in legs
                 if d.tx_hash}
    after_att = asyncio.run(wait_for_netted_attestation(network.bootstrap, address, closed_in,
                                                        timeout_s))
    executed = [{"chain_id": d.chain_id, "leg": d.leg, "status": d.status, "reason": d.reason,
                 "tx_hash": d.tx_hash,
                 "events": liquidations_in(by_chain[d.chain_id], d.tx_hash) if d.tx_hash else []}
                for d in legs]
    return {
        "price_before_usd": price,
        "price_after_usd": shocked,
        "unhedged_trader": address,
        "hedged_trader": hedged,
        "plan": {"sequence": plan.sequence, "health": plan.health,
                 "health_after": plan.health_after, "reason": plan.reason,
                 "legs": [leg.model_dump() for leg in plan.legs]},
        "liquidations": executed,
        "next_attestation": {"sequence": after_att.sequence, "health": after_att.health,
                             "equity_usd": after_att.equity_wad / WAD,
                             "maintenance_margin_usd": after_att.maintenance_margin_wad / WAD},
        "before": before,
        "after": {"unhedged": [venue_view(d, address) for d in (a, b)],
                  "hedged": [venue_view(d, hedged) for d in (a, b)]},
        "token_decimals": USDC_DECIMALS,
    }

