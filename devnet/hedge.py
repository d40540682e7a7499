"""The hedged-trader scenario on two chains, shared by ``xmargin demo`` and the e2e test.

A trader deposits on a venue on each chain, goes long on chain A and short the same
underlying on chain B; the node proves both books, the stream processor nets them, and
the attestation lands on both chains' MarginOracle.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import HTTPProvider, Web3

from devnet.clearing import deploy_vault, link
from devnet.deploy import (
    ASSET_DECIMALS,
    USDC_DECIMALS,
    VENUE_INITIAL_MARGIN_BPS,
    Deployment,
    anvil_account,
    contract,
    deploy_chain,
    fund,
    send_native,
    transact,
)
from devnet.localnet import LocalNet, free_port
from relayer.delivery.signing import write_keystore
from relayer.settings import KeystoreSettings
from wire import topics
from wire.commitment import market_bytes
from wire.records import Attestation, RecordError, Verdict, decode

WAD = 10**18
KEEPER_ACCOUNT = 8  # anvil's development account the node's keeper sends from


@dataclass(frozen=True)
class Network:
    bootstrap: str
    deployments: tuple[Deployment, ...]
    config_path: Path
    metrics_port: int = 0         # the node's HTTP server (status page, API, /metrics)
    worker_metrics_port: int = 0  # its Faust worker's /metrics
    # One TOML per signer of the oracles: each runs as its own attester process.
    attester_configs: tuple[Path, ...] = ()
    attesters: tuple[str, ...] = ()  # their addresses, in the order of the configs
    vaults: tuple[str, ...] = ()  # each deployment's ClearingVault (``settle``), in order


def setup_network(run_dir: Path, bootstrap: str, rpc_urls: list[str],
                  prices: dict[str, int], n_signers: int = 3, threshold: int = 2,
                  settle: bool = False) -> Network:
    """Deploy on every chain (oracles of ``n_signers`` signers at ``threshold``), write
    keystores, the node's TOML config and one attester's per signer. With ``settle``,
    a ClearingVault on each chain too, linked both ways, with a settler account of the
    node's (its own, funded with gas)."""
    deployer = anvil_account(0)
    signers = [Account.create() for _ in range(n_signers)]
    keys = run_dir / "keys"
    signer_stores = [write_keystore(s, keys, f"signer-{i}", f"pw-signer-{i}")
                     for i, s in enumerate(signers)]
    submitter = write_keystore(anvil_account(1), keys, "submitter", "pw-submitter")
    keeper = write_keystore(anvil_account(KEEPER_ACCOUNT), keys, "keeper", "pw-keeper")
    # Chains are independent, and each transaction waits for its block: deploy in parallel.
    with ThreadPoolExecutor(max_workers=len(rpc_urls)) as pool:
        deployments = tuple(pool.map(
            lambda url: deploy_chain(url, deployer, [s.address for s in signers], threshold,
                                     prices), rpc_urls))
        # The node's settlement account and its watcher's guardian (with ``settle``).
        settler, guardian = Account.create(), Account.create()
        # Each attester's watchtower pays a pause's gas from its signer's account.
        def gas_money(url: str) -> None:
            for s in signers:
                send_native(Web3(HTTPProvider(url)), deployer, s.address, 10**18)
            if settle:
                for own in (settler, guardian):
                    send_native(Web3(HTTPProvider(url)), deployer, own.address, 10**18)
        list(pool.map(gas_money, rpc_urls))
        made = list(pool.map(lambda d: deploy_vault(d, deployer, guardian=guardian.address),
                             deployments)) if settle else []
    for i in range(len(made)):
        for j in range(i + 1, len(made)):
            link(deployments[i], made[i], deployments[j], made[j], deployer)
    vaults: list[str | None] = list(made) or [None] * len(deployments)
    settler_store = write_keystore(settler, keys, "settler", "pw-settler")
    guardian_store = write_keystore(guardian, keys, "guardian", "pw-guardian")
    node_port, worker_port = free_port(), free_port()
    lines = [
        f'state_dir = "{run_dir / "state"}"',
        f"metrics_port = {node_port}",
        "[kafka]", f'bootstrap = "{bootstrap}"',
        "[streams]", f'data_dir = "{run_dir / "worker"}"', "partitions = 4",
        f"metrics_port = {worker_port}",
    ]
    for i, d in enumerate(deployments):
        lines += [
            "[[chains]]", f'name = "chain-{"ab"[i] if i < 2 else i}"', f"chain_id = {d.chain_id}",
            f'rpc_urls = ["{d.rpc_url}"]', "finality_blocks = 2", f'oracle = "{d.oracle}"',
            f'venues = ["{d.venue}"]', f'lending_pools = ["{d.pool}"]',
            f'option_venues = ["{d.options}"]',
            "price_feeds = {" + ", ".join(f'{a} = "{f}"' for a, f in d.feeds.items()) + "}",
            "vol_feeds = {" + ", ".join(f'{a} = "{f}"' for a, f in d.vol_feeds.items()) + "}",
            f'submitter = {{ keystore = "{submitter.keystore}", '
            f'password_file = "{submitter.password_file}" }}',
            f'keeper = {{ keystore = "{keeper.keystore}", '
            f'password_file = "{keeper.password_file}" }}',
        ]
        if vaults[i] is not None:
            lines += [f'clearing_vault = "{vaults[i]}"',
                      f'settler = {{ keystore = "{settler_store.keystore}", '
                      f'password_file = "{settler_store.password_file}" }}',
                      f'guardian = {{ keystore = "{guardian_store.keystore}", '
                      f'password_file = "{guardian_store.password_file}" }}']
    config = run_dir / "node.toml"
    config.write_text("\n".join(lines) + "\n")
    attesters = tuple(write_attester_config(run_dir / f"attester-{i}.toml", bootstrap, store,
                                            deployments, vaults=vaults)
                      for i, store in enumerate(signer_stores))
    return Network(bootstrap, deployments, config, node_port, worker_port, attesters,
                   tuple(s.address.lower() for s in signers), tuple(made))


def write_attester_config(path: Path, bootstrap: str, signer: KeystoreSettings,
                          deployments: Sequence[Deployment],
                          rpc_urls: Sequence[str] | None = None,
                          vaults: Sequence[str | None] = ()) -> Path:
    """An attester's TOML: its one key, and per chain its providers (``rpc_urls``, one per
    deployment; default: the chain's own) with a quorum of one."""
    lines = [f'state_dir = "{path.with_suffix("")}"',
             "[kafka]", f'bootstrap = "{bootstrap}"', "[signer]",
             f'keystore = "{signer.keystore}"', f'password_file = "{signer.password_file}"',
             "[streams]", "partitions = 4"]
    for i, d in enumerate(deployments):
        url = rpc_urls[i] if rpc_urls is not None else d.rpc_url
        lines += ["[[chains]]", f'name = "chain-{"ab"[i] if i < 2 else i}"',
                  f"chain_id = {d.chain_id}", f'rpc_urls = ["{url}"]', "finality_blocks = 2",
                  f'oracle = "{d.oracle}"']
        if i < len(vaults) and vaults[i] is not None:
            lines += [f'clearing_vault = "{vaults[i]}"', f'settle_venue = "{d.venue}"']
    path.write_text("\n".join(lines) + "\n")
    return path


def attester_command(config: Path) -> list[str]:
    return [sys.executable, "-m", "xmargin.cli", "attester", "run", "--config", str(config)]


def start_attesters(net: LocalNet, network: Network,
                    suffix: str = "") -> list[subprocess.Popen[bytes]]:
    """Every attester of ``network`` as its own process (named ``attester-<i><suffix>``)."""
    return [net.start(f"attester-{i}{suffix}", attester_command(config))
            for i, config in enumerate(network.attester_configs)]


def deposit(deployment: Deployment, trader: LocalAccount, collateral_usd: int) -> int:
    """Mint ``collateral_usd`` of the stablecoin to the trader and deposit it on the
    chain's perp venue; the block number of the deposit."""
    w3 = Web3(HTTPProvider(deployment.rpc_url))
    units = collateral_usd * 10**USDC_DECIMALS
    fund(w3, deployment, anvil_account(0), trader, units)
    venue = contract(w3, "PerpVenue", deployment.venue)
    return int(transact(w3, trader, venue.functions.deposit(units))["blockNumber"])


def withdraw(deployment: Deployment, trader: LocalAccount, units: int) -> int:
    """Withdraw stablecoin units from the chain's perp venue; the block number."""
    w3 = Web3(HTTPProvider(deployment.rpc_url))
    venue = contract(w3, "PerpVenue", deployment.venue)
    return int(transact(w3, trader, venue.functions.withdraw(units))["blockNumber"])


def trade(deployment: Deployment, trader: LocalAccount, market: str, size: float) -> int:
    """Trade on the chain's venue (checked against the oracle's credit); the block."""
    w3 = Web3(HTTPProvider(deployment.rpc_url))
    venue = contract(w3, "PerpVenue", deployment.venue)
    receipt = transact(w3, trader, venue.functions.trade(market_bytes(market), int(size * WAD)))
    return int(receipt["blockNumber"])


def supply(deployment: Deployment, trader: LocalAccount, market: str, units: float) -> int:
    """Supply ``units`` of ``market`` to the chain's lending pool; the block number."""
    w3 = Web3(HTTPProvider(deployment.rpc_url))
    amount = round(units * 10**ASSET_DECIMALS.get(market, 18))
    fund(w3, deployment, anvil_account(0), trader, 0, {market: amount})
    pool = contract(w3, "LendingPool", deployment.pool)
    receipt = transact(w3, trader, pool.functions.supply(market_bytes(market), amount))
    return int(receipt["blockNumber"])


def buy_option(deployment: Deployment, trader: LocalAccount, market: str, strike_usd: int,
               days: int, size: float, premium_usd: int, cash_usd: int) -> int:
    """The deployer quotes a call series, the trader deposits ``cash_usd`` on the option
    venue and buys ``size`` of it; the block number of the trade."""
    w3 = Web3(HTTPProvider(deployment.rpc_url))
    options = contract(w3, "OptionVenue", deployment.options)
    expiry = int(w3.eth.get_block("latest")["timestamp"]) + days * 86_400
    series = (market_bytes(market), strike_usd * WAD, expiry, True)
    transact(w3, anvil_account(0), options.functions.quote(*series, premium_usd * WAD))
    units = cash_usd * 10**USDC_DECIMALS
    fund(w3, deployment, anvil_account(0), trader, units)
    transact(w3, trader, options.functions.deposit(units))
    return int(transact(w3, trader, options.functions.trade(*series, int(size * WAD)))[
        "blockNumber"])


def wait_for_credit(deployments: Sequence[Deployment], trader: str, usd: float,
                    timeout_s: float) -> None:
    """Until every chain's oracle grants ``trader`` at least ``usd`` of free collateral:
    the venues draw new risk from the globally attested credit."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(read_oracle(d, trader)["oracle_free_collateral_view_usd"] >= usd
               for d in deployments):
            return
        time.sleep(0.5)
    raise TimeoutError(f"{trader} not granted ${usd:,.0f} on every chain within {timeout_s} s")


def open_positions(deployment: Deployment, trader: LocalAccount, market: str,
                   collateral_usd: int, size: float, timeout_s: float = 120.0) -> int:
    """Deposit, wait for the attested credit the trade needs, trade; the trade's block."""
    deposit(deployment, trader, collateral_usd)
    price = read_price(deployment, market)
    needed = abs(size) * price * VENUE_INITIAL_MARGIN_BPS / 10_000
    wait_for_credit([deployment], trader.address.lower(), needed, timeout_s)
    return trade(deployment, trader, market, size)


def read_price(deployment: Deployment, asset: str) -> float:
    w3 = Web3(HTTPProvider(deployment.rpc_url))
    feed = contract(w3, "PriceFeed", deployment.feeds[asset])
    return int(feed.functions.latestAnswer().call()) / 10 ** int(feed.functions.decimals().call())


def set_price(deployment: Deployment, asset: str, price_usd: float) -> int:
    """A new round on the chain's feed for ``asset``; the block number it landed in."""
    w3 = Web3(HTTPProvider(deployment.rpc_url))
    feed = contract(w3, "PriceFeed", deployment.feeds[asset])
    receipt = transact(w3, anvil_account(0), feed.functions.submit(round(price_usd * 10**8)))
    return int(receipt["blockNumber"])


def read_oracle(deployment: Deployment, trader: str) -> dict[str, Any]:
    w3 = Web3(HTTPProvider(deployment.rpc_url))
    oracle = contract(w3, "MarginOracle", deployment.oracle)
    checksum = Web3.to_checksum_address(trader)
    latest = oracle.functions.latest(checksum).call()
    return {
        "chain_id": deployment.chain_id,
        "oracle": deployment.oracle,
        "sequence": latest[1],
        "equity_usd": latest[2] / WAD,
        "maintenance_margin_usd": latest[3] / WAD,
        "initial_margin_usd": latest[4] / WAD,
        "free_collateral_usd": latest[5] / WAD,
        "params_version": latest[6],
        "valid_until": latest[8],
        "oracle_free_collateral_view_usd": oracle.functions.free_collateral(checksum).call() / WAD,
    }


async def wait_for_netted_attestation(bootstrap: str, trader: str, after_blocks: dict[int, int],
                                      timeout_s: float) -> Attestation:
    """The first attestation for ``trader`` whose source blocks cover every trade block."""
    def covers(att: Attestation) -> bool:
        seen = {b.chain_id: b.number for b in att.source_blocks}
        return att.trader == trader and all(seen.get(c, -1) >= n
                                            for c, n in after_blocks.items())
    return await wait_for_attestation(bootstrap, covers, timeout_s,
                                      f"covering blocks {after_blocks}")


async def wait_for_attestation(bootstrap: str, wanted: Callable[[Attestation], bool],
                               timeout_s: float, what: str) -> Attestation:
    """The first attestation on the topic for which ``wanted`` holds."""
    consumer = AIOKafkaConsumer(topics.ATTESTATION, bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for messages in batches.values():
                for m in messages:
                    try:
                        att = decode(Attestation, m.value)
                    except RecordError:
                        continue  # dead-lettered by the submitters; not ours to judge
                    if wanted(att):
                        return att
    finally:
        await consumer.stop()
    raise TimeoutError(f"no attestation {what} within {timeout_s} s")


async def wait_for_verdicts(bootstrap: str, trader: str, sequence: int, count: int,
                            timeout_s: float) -> dict[str, Verdict]:
    """The attesters' verdicts on ``trader``'s ``sequence`` once ``count`` have answered
    (or what answered within ``timeout_s``), by attester."""
    consumer = AIOKafkaConsumer(topics.SIGNATURE, bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    found: dict[str, Verdict] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and len(found) < count:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                for m in messages:
                    try:
                        v = decode(Verdict, m.value)
                    except RecordError:
                        continue
                    if (v.trader, v.sequence) == (trader, sequence):
                        found.setdefault(v.attester, v)
    finally:
        await consumer.stop()
    return found


def verdict_summary(attesters: Sequence[str], verdicts: dict[str, Verdict]) -> dict[str, str]:
    """Per attester: signed, refused (with its first difference) or silent."""
    def said(a: str) -> str:
        v = verdicts.get(a)
        if v is None:
            return "silent"
        return f"refused: {v.refused[0]}" if v.refused else "signed"
    return {a: said(a) for a in attesters}


def wait_for_oracles(deployments: tuple[Deployment, ...], trader: str, sequence: int,
                     timeout_s: float) -> list[dict[str, Any]]:
    """Readings of every chain's oracle once each holds ``sequence`` or later."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        readings = [read_oracle(d, trader) for d in deployments]
        if all(r["sequence"] >= sequence for r in readings):
            return readings
        time.sleep(0.5)
    raise TimeoutError(f"attestation {sequence} not on every chain within {timeout_s} s")


def run_hedge(network: Network, timeout_s: float = 180.0) -> dict[str, Any]:
    """Long on the first chain, short on the second; the summary once both oracles agree."""
    trader = anvil_account(2)
    address = trader.address.lower()
    a, b = network.deployments[:2]
    # Collateral first: each venue then draws the hedge's initial margin from the credit
    # line the oracle on its chain holds for the trader.
    deposit(a, trader, 10_000)
    deposit(b, trader, 10_000)
    wait_for_credit((a, b), address, 10.0 * read_price(a, "ETH") * VENUE_INITIAL_MARGIN_BPS
                    / 10_000, timeout_s)
    trade_blocks = {
        a.chain_id: trade(a, trader, "ETH", 10.0),
        b.chain_id: trade(b, trader, "ETH", -10.0),
    }
    att = asyncio.run(wait_for_netted_attestation(network.bootstrap, address, trade_blocks,
                                                  timeout_s))
    readings = wait_for_oracles(network.deployments, address, att.sequence, timeout_s)
    verdicts = asyncio.run(wait_for_verdicts(network.bootstrap, address, att.sequence,
                                             len(network.attesters), 10.0))
    isolated = att.isolated_margin_wad / WAD
    global_mm = att.maintenance_margin_wad / WAD
    return {
        "trader": address,
        "positions": {str(a.chain_id): "long 10 ETH", str(b.chain_id): "short 10 ETH"},
        "attestation_sequence": att.sequence,
        "params_version": att.params_version,
        "sum_isolated_maintenance_margin_usd": isolated,
        "global_maintenance_margin_usd": global_mm,
        "saving_pct": round(100.0 * (1 - global_mm / isolated), 2) if isolated else 0.0,
        "chains": readings,
        "attesters": verdict_summary(network.attesters, verdicts),
    }


def summary_json(summary: dict[str, Any]) -> str:
    return json.dumps(summary, indent=2, sort_keys=True)
