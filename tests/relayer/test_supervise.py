"""The node's supervisor reads ``retryable``: a failure that may pass is run again, one
that cannot is stopped (a restart loop on a bad setting helps nobody)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from eth_account import Account

from relayer.errors import ConfigError, RpcError
from relayer.node.supervise import supervise


def test_the_supervisor_restarts_a_retryable_failure_and_stops_a_final_one() -> None:
    calls: list[str] = []

    async def flaky() -> None:
        calls.append("flaky")
        if len(calls) == 1:
            raise RpcError("fake", "eth_blockNumber", "down")

    async def misconfigured() -> None:
        calls.append("misconfigured")
        raise ConfigError("chains.0.oracle", "no contract there")

    async def run() -> None:
        stop = asyncio.Event()
        await supervise("flaky", flaky, stop)
        await supervise("misconfigured", misconfigured, stop)

    asyncio.run(run())
    assert calls == ["flaky", "flaky", "misconfigured"]


def test_a_halted_listener_stops_its_chains_submitter_as_the_node_wires_them(
        tmp_path: Path) -> None:
    # The node hands the supervisor and every submitter one ``halted`` map.
    from relayer.chain.listener import Listener
    from relayer.delivery.gathering import SignatureBook
    from relayer.delivery.outcome import Outcome, Reason
    from relayer.delivery.retries import RetryStore
    from relayer.delivery.submitter import Submitter
    from relayer.statedir import StateDir
    from tests.relayer.test_listener import CHAIN, FEED, VOL_FEED, FakeChain, FakeSink, run_until
    from tests.relayer.test_submitter import FakeOracle, attestation

    chain, sink = FakeChain(height=8), FakeSink()
    asyncio.run(run_until(chain, sink, tmp_path, lambda: len(sink.headers()) == 9))
    chain.reorg(3, branch=1)  # below finality: the listener halts
    halted: dict[int, str] = {}
    listener = Listener(chain, sink, StateDir(tmp_path), {FEED.lower(): 8, VOL_FEED.lower(): 8})

    async def run() -> None:
        await supervise(f"listener-{CHAIN}", lambda: listener.run(asyncio.Event()),
                        asyncio.Event(), halted)

    asyncio.run(run())
    assert "reorg below finality" in halted[CHAIN]
    oracle = FakeOracle()
    oracle.chain_id = CHAIN
    a = attestation()
    credit = a.chains[0].model_copy(update={"chain_id": CHAIN})
    submitter = Submitter(oracle, Account.create(), SignatureBook(), FakeSink(), 3,
                          RetryStore(tmp_path / "deliveries.json"), halted=halted)
    result = asyncio.run(submitter.deliver(a, credit))
    assert (result.outcome, result.cause) == (Outcome.RETRY, Reason.CHAIN_HALTED)
    assert not oracle.sent


def test_a_demoted_provider_is_promoted_again_after_its_demotion() -> None:
    import time

    from relayer.chain.rpc import RpcPool
    from relayer.settings import ChainSettings, KeystoreSettings

    unused = KeystoreSettings(keystore=Path("unused.json"), password_file=Path("unused"))
    pool = RpcPool(ChainSettings(
        name="p", chain_id=41096, rpc_urls=["http://127.0.0.1:1", "http://127.0.0.1:2"],
        oracle="0x" + "aa" * 20, submitter=unused))
    pool.DEMOTION_S = 0.2
    first, second = pool.providers
    for _ in range(pool.DEMOTE_AFTER - 1):
        pool.failed(first, "eth_blockNumber", TimeoutError())
    assert pool.ranked()[0] is first  # not yet: fewer failures in a row than the limit
    pool.failed(first, "eth_blockNumber", TimeoutError())
    assert pool.ranked()[0] is second
    time.sleep(0.25)
    assert pool.ranked()[0] is first
