"""Granting a trader credit on a MarginOracle with a real threshold-signed attestation,
for tests of the venues that draw on it (the node does this through the whole pipeline)."""

from __future__ import annotations

from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from devnet.deploy import Deployment, anvil_account, contract, transact
from relayer.delivery.signing import sign_digest, threshold_signatures
from wire.commitment import market_bytes
from wire.eip712 import attestation_digest

WAD = 10**18


def attest(w3: Web3, d: Deployment, signers: list[LocalAccount], threshold: int, trader: str,
           free_usd: float, equity_usd: float = 100_000.0, mm_usd: float = 0.0,
           source_block: int | None = None, valid_for_s: int = 3600,
           sender: LocalAccount | None = None) -> int:
    """Submit (from ``sender``, default anvil's account 1) the next attestation for
    ``trader``, as having seen this chain up to ``source_block`` (default: the latest
    block); its sequence."""
    oracle = contract(w3, "MarginOracle", d.oracle)
    who = Web3.to_checksum_address(trader)
    sequence = int(oracle.functions.latest(who).call()[1]) + 1
    fields = dict(sequence=sequence, equity_wad=int(equity_usd * WAD),
                  maintenance_margin_wad=int(mm_usd * WAD),
                  initial_margin_wad=int(mm_usd * 1.25 * WAD),
                  free_collateral_wad=int(free_usd * WAD), params_version=1,
                  source_blocks_hash=b"\x42" * 32,
                  source_block=w3.eth.block_number if source_block is None else source_block,
                  valid_until=int(w3.eth.get_block("latest")["timestamp"]) + valid_for_s)
    digest = attestation_digest(chain_id=d.chain_id, oracle=bytes.fromhex(d.oracle[2:]),
                                trader=bytes.fromhex(trader.lower()[2:]), **fields)
    signatures = threshold_signatures([sign_digest(s, digest) for s in signers], threshold)
    struct = (who, sequence, fields["equity_wad"], fields["maintenance_margin_wad"],
              fields["initial_margin_wad"], fields["free_collateral_wad"], 1,
              fields["source_blocks_hash"], fields["source_block"], fields["valid_until"])
    transact(w3, sender or anvil_account(1), oracle.functions.submit(struct, signatures))
    return sequence


def new_account(w3: Web3) -> LocalAccount:
    """A fresh account with gas money (anvil_setBalance): a party of its own."""
    account = Account.create()
    w3.provider.make_request("anvil_setBalance", [account.address, hex(10 * WAD)])
    return account


def keeper_reward(w3: Web3, d: Deployment, venue: Any, receipt: dict, cash: int) -> int:
    """The caller's reward the liquidation in ``receipt`` paid on ``venue`` (token
    units), recomputed from the venue's terms: ``keeper_gas`` at the receipt's gas price,
    priced by the gas market's feed, rounded up, plus the minimum; capped by the
    trader's ``cash`` there before the charges."""
    gas, minimum = venue.functions.keeper_gas().call(), venue.functions.min_keeper_reward().call()
    feed = contract(w3, "PriceFeed", d.feeds["ETH"])
    assert venue.functions.gas_market().call() == market_bytes("ETH")
    answer = feed.functions.latestRoundData().call(block_identifier=receipt["blockNumber"])[1]
    price_wad = answer * 10 ** (18 - feed.functions.decimals().call())
    gas_wad = -(-gas * receipt["effectiveGasPrice"] * price_wad // WAD)
    unit_wad = venue.functions.unit_wad().call()
    return min(-(-gas_wad // unit_wad) + minimum, max(cash, 0))
