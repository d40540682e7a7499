"""The listener on a real anvil chain that reorganises (``anvil_reorg``): a shallow
reorg is retracted by hash and the new branch published; one below finality halts the
chain with every provider's view as evidence."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import pytest
from aiokafka import AIOKafkaConsumer
from web3 import HTTPProvider, Web3

from bus.admin import ensure_topics
from bus.publisher import Publisher
from devnet.deploy import Deployment, anvil_account, contract, deploy_chain
from devnet.localnet import LocalNet
from relayer.chain.listener import Listener
from relayer.chain.rpc import RpcPool
from relayer.errors import ChainHalted
from relayer.proving.service import ProofService
from relayer.settings import ChainSettings, KeystoreSettings
from relayer.statedir import StateDir
from tests.support.credit import attest
from tests.support.metrics import sample
from wire import topics
from wire.commitment import market_bytes
from wire.records import BlockHeaderRecord, ChainReorg, PositionEvent

pytestmark = pytest.mark.integration
WAD = 10**18
FINALITY = 5


async def read_all(broker: str, topic: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=broker, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    out: list[bytes] = []
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=1000)
            if not batch:
                return out
            out += [m.value for ms in batch.values() for m in ms]
    finally:
        await consumer.stop()


def signed(w3: Web3, account: Any, call: Any, nonce: int) -> str:
    tx = call.build_transaction({"from": account.address, "nonce": nonce, "gas": 500_000,
                                 "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9})
    return "0x" + account.sign_transaction(tx).raw_transaction.hex()


def settings_for(url: str, chain_id: int, d: Deployment) -> ChainSettings:
    unused = KeystoreSettings(keystore=Path("unused.json"), password_file=Path("unused"))
    return ChainSettings(name=f"reorg-{chain_id}", chain_id=chain_id, rpc_urls=[url],
                         finality_blocks=FINALITY, poll_interval_s=0.1, venues=[d.venue],
                         oracle=d.oracle, submitter=unused)


async def until(check: Any, timeout_s: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def running(settings: ChainSettings, broker: str, state_dir: Path
                  ) -> AsyncIterator[tuple[RpcPool, Publisher, asyncio.Task[None]]]:
    """A listener on ``settings``' chain publishing to ``broker``, stopped on exit (its
    task is left for the test to inspect, not awaited for its result)."""
    await ensure_topics(broker, 4)
    client = RpcPool(settings)
    publisher = Publisher(broker)
    await publisher.start()
    stop = asyncio.Event()
    task = asyncio.create_task(Listener(client, publisher, StateDir(state_dir), {}).run(stop))
    try:
        yield client, publisher, task
    finally:
        stop.set()
        _, pending = await asyncio.wait({task}, timeout=10)
        for t in pending:
            t.cancel()
        await publisher.stop()
        await client.close()


def test_three_block_reorg_is_retracted_and_the_new_branch_published(
        localnet: LocalNet, broker: str, tmp_path: Path) -> None:
    url = localnet.chain(41050, block_time_s=None)
    d = deploy_chain(url, anvil_account(0), [anvil_account(1).address], 1, {"ETH": 3000})
    w3 = Web3(HTTPProvider(url))
    venue = contract(w3, "PerpVenue", d.venue)
    trader = anvil_account(2)

    async def scenario() -> dict[str, Any]:
        async with running(settings_for(url, 41050, d), broker, tmp_path) as (
                client, publisher, _):
            # Credit on the oracle (the venue draws its trades' margin from it).
            attest(w3, d, [anvil_account(1)], 1, trader.address, free_usd=50_000)
            nonce = w3.eth.get_transaction_count(trader.address)
            base = w3.eth.block_number
            # Three blocks: deposit, a 2 ETH trade, an empty one; all published at the head.
            for raw in (signed(w3, trader, venue.functions.deposit(10_000 * WAD), nonce),
                        signed(w3, trader, venue.functions.trade(market_bytes("ETH"), 2 * WAD),
                               nonce + 1)):
                w3.eth.send_raw_transaction(raw)
            w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
            head = w3.eth.block_number
            assert head == base + 3
            orphaned = {"0x" + w3.eth.get_block(n)["hash"].hex().removeprefix("0x")
                        for n in range(base + 1, head + 1)}
            path = tmp_path / "listener-41050.json"
            await until(lambda: path.exists()
                        and json.loads(path.read_text())["next_block"] > head)
            # The same three heights again, the trade now 3 ETH.
            w3.provider.make_request("anvil_reorg", [3, [  # type: ignore[arg-type]
                [signed(w3, trader, venue.functions.deposit(10_000 * WAD), nonce), 0],
                [signed(w3, trader, venue.functions.trade(market_bytes("ETH"), 3 * WAD),
                        nonce + 1), 1]]])
            assert w3.eth.block_number == head
            new_branch = {"0x" + w3.eth.get_block(n)["hash"].hex().removeprefix("0x")
                          for n in range(base + 1, head + 1)}
            assert not new_branch & orphaned
            await until(lambda: json.loads(path.read_text())["recent"][-1][1] in new_branch)
            for _ in range(FINALITY + 1):
                w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
            await until(lambda: json.loads(path.read_text())["next_final"] > head)
            events = [PositionEvent.model_validate_json(v)
                      for v in await read_all(broker, topics.POSITION_EVENT)]
            prover = ProofService({41050: client}, publisher)
            canonical = {e.event_id: await prover.until_final(e) for e in events
                         if e.chain_id == 41050}
            return {"orphaned": orphaned, "new_branch": new_branch, "base": base,
                    "events": [e for e in events if e.chain_id == 41050],
                    "canonical": canonical}

    # The metrics are the process's: this test runs once per broker in one process.
    reorgs_before = sample("xmargin_reorgs_total", chain="reorg-41050")
    depth_before = {le: sample("xmargin_reorg_depth_blocks_bucket", chain="reorg-41050", le=le)
                    for le in ("2.0", "3.0")}
    seen = asyncio.run(scenario())
    reorgs = [ChainReorg.model_validate_json(v)
              for v in asyncio.run(read_all(broker, topics.REORG))]
    reorgs = [r for r in reorgs if r.chain_id == 41050]
    assert len(reorgs) == 1
    assert set(reorgs[0].orphaned) == seen["orphaned"]
    assert reorgs[0].common_ancestor.number == seen["base"]
    headers = [BlockHeaderRecord.model_validate_json(v)
               for v in asyncio.run(read_all(broker, topics.BLOCK_HEADER))]
    hashes = [h.hash for h in headers if h.chain_id == 41050]
    assert len(hashes) == len(set(hashes))  # each block hash published once
    assert seen["orphaned"] | seen["new_branch"] <= set(hashes)
    trades = {e.block_hash: e.positions[0].size_wad for e in seen["events"] if e.positions}
    assert sorted(trades.values()) == [2 * WAD, 3 * WAD]  # retracted branch, then the new one
    for e in seen["events"]:
        # Only the new branch's events are ever proven (and so attested).
        assert seen["canonical"][e.event_id] == (e.block_hash in seen["new_branch"])
    assert sample("xmargin_reorgs_total", chain="reorg-41050") - reorgs_before == 1
    depth = {le: sample("xmargin_reorg_depth_blocks_bucket", chain="reorg-41050", le=le)
             - before for le, before in depth_before.items()}
    assert depth == {"2.0": 0, "3.0": 1}


def test_reorg_below_finality_halts_the_chain_with_evidence(
        localnet: LocalNet, broker: str, tmp_path: Path) -> None:
    url = localnet.chain(41051, block_time_s=None)
    d = deploy_chain(url, anvil_account(0), [anvil_account(1).address], 1, {"ETH": 3000})
    w3 = Web3(HTTPProvider(url))

    async def scenario() -> BaseException | None:
        async with running(settings_for(url, 41051, d), broker, tmp_path) as (_, _, task):
            for _ in range(FINALITY + 5):
                w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
            head = w3.eth.block_number
            path = tmp_path / "listener-41051.json"
            await until(lambda: path.exists()
                        and json.loads(path.read_text())["next_final"] > head - FINALITY)
            # Replace FINALITY + 3 blocks: some of them were already final.
            w3.provider.make_request("anvil_reorg", [FINALITY + 3, []])  # type: ignore[arg-type]
            w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
            done, _ = await asyncio.wait({task}, timeout=30)
            assert done, "the listener kept going after a reorg below finality"
            return task.exception()

    error = asyncio.run(scenario())
    assert isinstance(error, ChainHalted)
    incident = json.loads(next(tmp_path.glob("incident-41051-*.json")).read_text())
    assert incident["reason"] == "reorg below finality"
    assert incident["published_hash"].startswith("0x")
    [(provider, view)] = incident["providers"].items()
    assert provider == url and view.startswith("0x") and view != incident["published_hash"]
    assert sample("xmargin_chain_halted", chain="reorg-41051") == 1
    assert sample("xmargin_chain_halts_total", chain="reorg-41051") >= 1
    reorgs = [ChainReorg.model_validate_json(v)
              for v in asyncio.run(read_all(broker, topics.REORG))]
    assert not [r for r in reorgs if r.chain_id == 41051]  # no silent retraction


def test_providers_disagreeing_on_a_final_block_halt_the_chain(
        localnet: LocalNet, broker: str, tmp_path: Path) -> None:
    # Two endpoints for one chain id that are, in fact, two different chains.
    first, second = localnet.chain(41052, block_time_s=None), localnet.chain(41052,
                                                                            block_time_s=None)
    # Empty blocks mined in the same second are the same on both; a transfer on one is not.
    w3 = Web3(HTTPProvider(first))
    w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": w3.eth.accounts[1],
                             "value": 1})
    for url in (first, second):
        for _ in range(FINALITY + 3):
            Web3(HTTPProvider(url)).provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    unused = KeystoreSettings(keystore=Path("unused.json"), password_file=Path("unused"))
    settings = ChainSettings(name="split", chain_id=41052, rpc_urls=[first, second],
                             finality_blocks=FINALITY, poll_interval_s=0.1,
                             oracle="0x" + "aa" * 20, submitter=unused)

    async def scenario() -> BaseException | None:
        async with running(settings, broker, tmp_path) as (_, _, task):
            done, _ = await asyncio.wait({task}, timeout=30)
            assert done, "the listener kept going while its providers disagree"
            return task.exception()

    error = asyncio.run(scenario())
    assert isinstance(error, ChainHalted)
    assert error.evidence["reason"] == "providers disagree on a final block"
    views = error.evidence["providers"]
    assert set(views) == {first, second} and len(set(views.values())) == 2
    assert all(v.startswith("0x") for v in views.values())


def test_a_websocket_head_feed_wakes_the_listener_long_before_its_poll(
        localnet: LocalNet, broker: str, tmp_path: Path) -> None:
    url = localnet.chain(41053, block_time_s=None)
    unused = KeystoreSettings(keystore=Path("unused.json"), password_file=Path("unused"))
    settings = ChainSettings(name="ws", chain_id=41053, rpc_urls=[url], finality_blocks=2,
                             poll_interval_s=60.0, ws_url=url.replace("http://", "ws://"),
                             oracle="0x" + "aa" * 20, submitter=unused)
    w3 = Web3(HTTPProvider(url))
    path = tmp_path / "listener-41053.json"

    async def scenario() -> list[float]:
        delays = []
        async with running(settings, broker, tmp_path):
            await until(lambda: path.exists())  # caught up at start
            # The head subscription is in place.
            await until(lambda: sample("xmargin_ws_connected", chain="ws") == 1)
            for _ in range(3):
                w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
                head = w3.eth.block_number
                started = asyncio.get_running_loop().time()
                await until(lambda h=head: json.loads(path.read_text())["next_block"] > h,
                            10.0)
                delays.append(asyncio.get_running_loop().time() - started)
        return delays

    delays = asyncio.run(scenario())
    assert max(delays) < 5.0  # against a 60 s poll interval
    assert sample("xmargin_ws_connected", chain="ws") == 0  # closed with the listener


def test_a_restarted_listener_neither_skips_nor_repeats_a_block(
        localnet: LocalNet, broker: str, tmp_path: Path) -> None:
    url = localnet.chain(41054, block_time_s=None)
    unused = KeystoreSettings(keystore=Path("unused.json"), password_file=Path("unused"))
    settings = ChainSettings(name="restart", chain_id=41054, rpc_urls=[url], finality_blocks=2,
                             poll_interval_s=0.1, oracle="0x" + "aa" * 20, submitter=unused)
    w3 = Web3(HTTPProvider(url))
    path = tmp_path / "listener-41054.json"

    async def run_until_caught_up() -> None:
        async with running(settings, broker, tmp_path):
            head = w3.eth.block_number
            await until(lambda: path.exists()
                        and json.loads(path.read_text())["next_block"] > head)

    for _ in range(2):  # two lives of the listener, blocks mined while it was down
        for _ in range(5):
            w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        asyncio.run(run_until_caught_up())
    headers = [BlockHeaderRecord.model_validate_json(v)
               for v in asyncio.run(read_all(broker, topics.BLOCK_HEADER))]
    numbers = sorted(h.number for h in headers if h.chain_id == 41054)
    assert numbers == list(range(w3.eth.block_number + 1))


@pytest.mark.parametrize("tag, mined, chain_id", [("safe", 40, 41055),
                                                  ("finalized", 100, 41057)])
def test_finality_by_the_chains_own_tag(localnet: LocalNet, broker: str, tmp_path: Path,
                                        tag: Literal["safe", "finalized"], mined: int,
                                        chain_id: int) -> None:
    url = localnet.chain(chain_id, block_time_s=None)
    unused = KeystoreSettings(keystore=Path("unused.json"), password_file=Path("unused"))
    settings = ChainSettings(name="tagged", chain_id=chain_id, rpc_urls=[url],
                             finality_blocks=2, finality_tag=tag, poll_interval_s=0.1,
                             oracle="0x" + "aa" * 20, submitter=unused)
    w3 = Web3(HTTPProvider(url))
    for _ in range(mined):
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    safe = w3.eth.get_block(tag)["number"]
    assert 0 < safe < mined - 2  # anvil's tagged block lags further than finality_blocks
    path = tmp_path / f"listener-{chain_id}.json"

    async def scenario() -> int:
        async with running(settings, broker, tmp_path) as (client, _, _):
            await until(lambda: path.exists()
                        and json.loads(path.read_text())["next_block"] > mined
                        and json.loads(path.read_text())["next_final"] == safe + 1)
            return await client.finalized_height()

    assert asyncio.run(scenario()) == safe
    assert json.loads(path.read_text())["next_final"] == safe + 1  # rounds published to it
