"""Three attesters at threshold 2, each its own process with its own key and provider,
beside a node that holds no signer key, on two anvil chains and the broker.

One attester behind a lying provider (every price round it reads 5% high) refuses with
the difference and the other two sign: the attestation lands. With two lying, nothing
lands, and both refusals are on the log and in the delivery's reason. An attester
killed with SIGKILL and started again catches up and signs the attestation waiting for
it, once. A minority refusal pauses nobody; an attestation signed with two stolen keys
and sent straight to an oracle, around the attesters, is paused by the watchtowers
within one block, and the venue refuses the trader new risk until a threshold lifts it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from web3 import HTTPProvider, Web3
from web3.exceptions import ContractLogicError

from bus.admin import ensure_topics
from devnet.deploy import anvil_account, contract, transact
from devnet.hedge import (
    Network,
    attester_command,
    open_positions,
    read_oracle,
    setup_network,
    trade,
    wait_for_netted_attestation,
    wait_for_oracles,
    wait_for_verdicts,
)
from devnet.localnet import LocalNet, free_port
from relayer.delivery.signing import load_keystore, sign_digest, threshold_signatures
from relayer.settings import KeystoreSettings
from tests.support.credit import attest, new_account
from wire import topics
from wire.commitment import market_bytes
from wire.records import Delivery, RecordError, Verdict, decode

pytestmark = pytest.mark.integration
LIE = 1.05


def run_attester(localnet: LocalNet, network: Network, i: int, name: str,
                 lying: bool) -> subprocess.Popen[bytes]:
    """Attester ``i``, reading every chain through its own provider: the chain itself,
    or a lying proxy in front of it."""
    config = network.attester_configs[i]
    text = config.read_text()
    for d in network.deployments:
        port = free_port()
        localnet.start(f"{name}-rpc-{d.chain_id}", [
            sys.executable, "-m", "tests.support.lying_rpc", "--upstream", d.rpc_url,
            "--port", str(port), "--price-factor", str(LIE if lying else 1.0)], port=port)
        # Each start rewrites the provider line of this chain only.
        lines = text.splitlines()
        at = lines.index(f"chain_id = {d.chain_id}")
        lines[at + 1] = f'rpc_urls = ["http://127.0.0.1:{port}"]'
        text = "\n".join(lines) + "\n"
    own = config.with_name(f"{name}.toml")
    own.write_text(text)
    return localnet.start(name, attester_command(own))


async def verdicts_of(bootstrap: str, attester: str) -> list[Verdict]:
    consumer = AIOKafkaConsumer(topics.SIGNATURE, bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    found: list[Verdict] = []
    try:
        for _ in range(6):  # until a few fetches come back empty
            batches = await consumer.getmany(timeout_ms=500)
            for messages in batches.values():
                for m in messages:
                    v = decode(Verdict, m.value)
                    if v.attester == attester:
                        found.append(v)
    finally:
        await consumer.stop()
    return found


async def delivery_of(bootstrap: str, trader: str, sequence: int, chain_id: int,
                      timeout_s: float) -> Delivery:
    consumer = AIOKafkaConsumer(topics.DELIVERY, bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                for m in messages:
                    try:
                        d = decode(Delivery, m.value)
                    except RecordError:
                        continue
                    if (d.trader, d.sequence, d.chain_id) == (trader, sequence, chain_id):
                        return d
    finally:
        await consumer.stop()
    raise AssertionError(f"no delivery of {trader}:{sequence} on {chain_id} in {timeout_s} s")


def test_m_of_n_holds_against_lying_providers_and_a_killed_attester(
        localnet: LocalNet, broker: str, chain_urls: list[str], tmp_path: Path) -> None:
    network = setup_network(tmp_path, broker, chain_urls, prices={"ETH": 3000})
    asyncio.run(ensure_topics(broker, 4))
    honest_0, honest_1, liar_2 = network.attesters
    procs = {0: run_attester(localnet, network, 0, "attester-0", lying=False),
             1: run_attester(localnet, network, 1, "attester-1", lying=False),
             2: run_attester(localnet, network, 2, "attester-2", lying=True)}
    localnet.start("node", [sys.executable, "-m", "xmargin.cli", "node", "run",
                            "--config", str(network.config_path)])
    chain_a = network.deployments[0]
    trader = anvil_account(4)
    address = trader.address.lower()

    # One liar: it refuses, naming the round its provider reports otherwise; two sign.
    opened = open_positions(chain_a, trader, "ETH", collateral_usd=10_000, size=1.0)
    first = asyncio.run(wait_for_netted_attestation(broker, address,
                                                    {chain_a.chain_id: opened}, 120.0))
    wait_for_oracles(network.deployments, address, first.sequence, 120.0)
    said = asyncio.run(wait_for_verdicts(broker, address, first.sequence, 3, 60.0))
    assert said[honest_0].signatures and said[honest_1].signatures
    why = said[liar_2].refused  # each lying round: the ETH price and vol on both chains
    assert why and all("this attester's providers" in w and "round ETH" in w for w in why), why

    # Two liars: refused by both, nothing lands; each refusal and its difference is
    # on the log and in the delivery's reason.
    localnet.stop("attester-1")
    procs[1] = run_attester(localnet, network, 1, "attester-1-lying", lying=True)
    traded = trade(chain_a, trader, "ETH", 0.5)
    second = asyncio.run(wait_for_netted_attestation(broker, address,
                                                     {chain_a.chain_id: traded}, 120.0))
    said = asyncio.run(wait_for_verdicts(broker, address, second.sequence, 3, 60.0))
    assert said[honest_0].signatures
    assert all("this attester's providers" in said[a].refused[0] for a in (honest_1, liar_2))
    dropped = asyncio.run(delivery_of(broker, address, second.sequence, chain_a.chain_id,
                                      90.0))
    assert dropped.status == "dropped"
    assert dropped.reason.startswith("2 of 3 attesters refused (threshold 2)"), dropped.reason
    assert honest_1 in dropped.reason and liar_2 in dropped.reason
    assert read_oracle(chain_a, address)["sequence"] == first.sequence

    # The one honest attester killed, the other liar made honest: one signature, one
    # refusal, one silent; the next attestation waits, visibly, until the killed
    # attester is back, catches up, and signs it (and nothing twice).
    os.killpg(procs[0].pid, signal.SIGKILL)
    procs[0].wait(10)
    localnet.stop("attester-1-lying")
    procs[1] = run_attester(localnet, network, 1, "attester-1-honest", lying=False)
    traded = trade(chain_a, trader, "ETH", 0.5)
    third = asyncio.run(wait_for_netted_attestation(broker, address,
                                                    {chain_a.chain_id: traded}, 120.0))
    waiting = asyncio.run(wait_for_verdicts(broker, address, third.sequence, 2, 60.0))
    assert waiting[honest_1].signatures and waiting[liar_2].refused
    time.sleep(5)
    assert read_oracle(chain_a, address)["sequence"] < third.sequence
    procs[0] = run_attester(localnet, network, 0, "attester-0-again", lying=False)
    landed = wait_for_oracles(network.deployments, address, third.sequence, 120.0)
    assert all(r["sequence"] == third.sequence for r in landed)
    mine = asyncio.run(verdicts_of(broker, honest_0))
    answered = [(v.trader, v.sequence) for v in mine]
    assert len(answered) == len(set(answered)), answered
    assert (address, third.sequence) in answered

    # A refusal in the minority paused nobody: a threshold signed each landed one openly.
    w3 = Web3(HTTPProvider(chain_a.rpc_url))
    oracle = contract(w3, "MarginOracle", chain_a.oracle)
    venue = contract(w3, "PerpVenue", chain_a.venue)
    who = Web3.to_checksum_address(address)
    assert not oracle.functions.is_paused(who).call()
    watch_stolen_keys(network, w3, oracle, venue, trader.address, tmp_path)


def watch_stolen_keys(network: Network, w3: Web3, oracle: Any, venue: Any,
                      trader: str, tmp_path: Path) -> None:
    """Attester-0's and attester-1's keys stolen: an attestation granting the trader a
    fortune, signed with them and sent straight to the oracle. No attester reproduced
    it and no threshold signed it on the log: the trader is paused within one block of
    its acceptance; the two attesters whose keys signed it pause the whole oracle."""
    chain_a = network.deployments[0]
    keys = tmp_path / "keys"
    signer = [load_keystore(KeystoreSettings(keystore=keys / f"signer-{i}.json",
                                             password_file=keys / f"signer-{i}.password"),
                            "signer") for i in range(3)]
    who = Web3.to_checksum_address(trader)
    before = w3.eth.block_number
    sequence = attest(w3, chain_a, signer[:2], 2, trader, free_usd=10_000_000,
                      sender=new_account(w3))
    accepted = [e for e in oracle.events.AttestationAccepted().get_logs(
        from_block=before) if e.args.sequence == sequence]
    assert len(accepted) == 1
    at = accepted[0].blockNumber
    deadline = time.monotonic() + 30
    while not oracle.functions.is_paused(who).call() and time.monotonic() < deadline:
        time.sleep(0.1)
    paused = [e.blockNumber for kind in ("Paused", "PausedAll")
              for e in getattr(oracle.events, kind)().get_logs(from_block=at)]
    assert paused and min(paused) <= at + 1, (at, paused)
    eth = market_bytes("ETH")
    try:
        venue.functions.trade(eth, 10**18).call({"from": who})
        raise AssertionError("a paused trader's new risk went through")
    except ContractLogicError as e:
        assert "trader paused" in str(e), e
    # Whose keys signed it pause the whole oracle: its key is in other hands.
    deadline = time.monotonic() + 30
    while not oracle.functions.all_paused().call() and time.monotonic() < deadline:
        time.sleep(0.2)
    by = {e.args.signer.lower() for e in oracle.events.PausedAll().get_logs(from_block=at)}
    assert by and by <= {network.attesters[0], network.attesters[1]}, by
    # A threshold lifts both (after a rotation, in earnest); the trader trades again.
    for lift in ("unpause_all", "unpause"):
        if lift == "unpause":
            digest, args = oracle.functions.unpause_digest(who).call(), [who]
            if not oracle.functions.trader_paused(who).call():
                continue
        else:
            digest, args = oracle.functions.unpause_all_digest().call(), []
        signatures = threshold_signatures([sign_digest(s, digest) for s in signer], 2)
        transact(w3, anvil_account(5), getattr(oracle.functions, lift)(*args, signatures))
    assert not oracle.functions.is_paused(who).call()
    venue.functions.trade(eth, 10**18).call({"from": who})
