"""Deploying the clearing vaults of satellite chains and linking them (demo and tests)."""

from __future__ import annotations

from eth_account.signers.local import LocalAccount
from web3 import HTTPProvider, Web3

from devnet.deploy import USDC_DECIMALS, Deployment, contract, deploy_contract, transact

# A settlement order moves at most this much (token units) ...
ORDER_CAP = 1_000_000 * 10**USDC_DECIMALS
# ... each lane (remote chain, direction) holds this much and refills at this rate ...
LANE_CAPACITY = 2_000_000 * 10**USDC_DECIMALS
LANE_RATE_PER_S = 100 * 10**USDC_DECIMALS
# ... and credits of this size or more wait this long, in which the guardian may freeze them.
DELAY_THRESHOLD = 500_000 * 10**USDC_DECIMALS
DELAY_S = 3_600
# What the deployer seeds each clearing reserve with.
RESERVE_FUNDS = 1_000_000 * 10**USDC_DECIMALS

OUTBOUND, INBOUND = 0, 1


def deploy_vault(d: Deployment, deployer: LocalAccount, reserve: int = RESERVE_FUNDS,
                 order_cap: int = ORDER_CAP, guardian: str | None = None) -> str:
    """A ClearingVault on ``d``'s chain, settling through its PerpVenue, with a reserve
    of ``reserve`` token units provided by the deployer, and ``guardian`` (default the
    deployer) as the account that may freeze and halt."""
    w3 = Web3(HTTPProvider(d.rpc_url))
    at = Web3.to_checksum_address
    vault = deploy_contract(w3, deployer, "ClearingVault", at(d.oracle), at(d.token), order_cap)
    v = contract(w3, "ClearingVault", vault)
    transact(w3, deployer, v.functions.register_venue(at(d.venue)))
    transact(w3, deployer, contract(w3, "PerpVenue", d.venue).functions.set_vault(at(vault)))
    transact(w3, deployer, v.functions.set_delay(DELAY_THRESHOLD, DELAY_S))
    if guardian is not None:
        transact(w3, deployer, v.functions.set_guardian(at(guardian)))
    if reserve:
        token = contract(w3, "Token", d.token)
        transact(w3, deployer, token.functions.mint(deployer.address, reserve))
        transact(w3, deployer, token.functions.approve(at(vault), reserve))
        transact(w3, deployer, v.functions.provide(reserve))
    return vault


def link(a: Deployment, vault_a: str, b: Deployment, vault_b: str, deployer: LocalAccount,
         capacity: int = LANE_CAPACITY, rate: int = LANE_RATE_PER_S) -> None:
    """Each vault believes the other's receipts, with both lanes open both ways."""
    at = Web3.to_checksum_address
    for here, vault, there, remote in ((a, vault_a, b, vault_b), (b, vault_b, a, vault_a)):
        w3 = Web3(HTTPProvider(here.rpc_url))
        v = contract(w3, "ClearingVault", vault)
        transact(w3, deployer, v.functions.register_source(there.chain_id, at(remote)))
        for direction in (OUTBOUND, INBOUND):
            transact(w3, deployer, v.functions.open_lane(there.chain_id, direction, capacity, rate))
