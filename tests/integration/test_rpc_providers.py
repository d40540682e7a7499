"""A hung, lying or rate-limiting RPC provider neither stalls nor misleads the client.

The bad provider is a real HTTP proxy in front of the real anvil chain that hangs, edits
the state root of the blocks it relays, or answers HTTP 429.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from devnet.localnet import LocalNet, free_port
from relayer.chain.rpc import RpcPool
from relayer.errors import RpcError
from relayer.metrics import provider_label
from relayer.proving.fetcher import ProofFetcher
from relayer.settings import ChainSettings, KeystoreSettings
from tests.support.storage import StorageFiller

pytestmark = pytest.mark.integration


class BadProvider:
    def __init__(self, upstream: str, mode: str) -> None:
        self.upstream = upstream
        self.mode = mode
        self.calls = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        body = await request.json()
        if self.mode == "hang":
            await asyncio.sleep(5)  # five times the client timeout
        if self.mode == "429":
            return web.Response(status=429, text="rate limited")
        async with aiohttp.ClientSession() as session, session.post(self.upstream,
                                                                    json=body) as r:
            answer = await r.json()
        result = answer.get("result")
        if self.mode == "lie" and isinstance(result, dict) and "stateRoot" in result:
            result["stateRoot"] = "0x" + "66" * 32  # keeps the claimed hash
        if self.mode == "lie" and isinstance(result, dict) and "storageProof" in result:
            for entry in result["storageProof"]:
                entry["value"] = hex(int(entry["value"], 16) + 1)
        return web.json_response(answer)


async def serve(bad: BadProvider) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/", bad.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def client(urls: list[str]) -> RpcPool:
    unused = KeystoreSettings(keystore=Path("unused"), password_file=Path("unused"))
    return RpcPool(ChainSettings(name="t", chain_id=41040, rpc_urls=urls, rpc_timeout_s=1.0,
                                     oracle="0x" + "00" * 20, submitter=unused))


@pytest.mark.parametrize("mode", ["hang", "lie", "429"])
def test_bad_first_provider_is_passed_over_then_demoted(localnet: LocalNet, mode: str) -> None:
    anvil = localnet.chain(41040, block_time_s=None)

    async def true_hash() -> str:
        c = client([anvil])
        try:
            return (await c.header(0)).hash.hex()
        finally:
            await c.close()
    truth = asyncio.run(true_hash())

    kind = {"hang": "timeout", "lie": "bad_answer", "429": "rate_limited"}[mode]
    labels: dict[str, str] = {}

    def sample(name: str, **extra: str) -> float:
        return REGISTRY.get_sample_value(name, {**labels, **extra}) or 0.0

    async def run() -> tuple[list[float], int, int]:
        bad = BadProvider(anvil, mode)
        server = serve(bad)
        url = await server.__anext__()
        c = client([url, anvil])
        labels.update(chain=c.name, provider=provider_label(url))
        assert "/" not in labels["provider"]  # host and port, never the URL's path
        before.update(errors=sample("xmargin_rpc_errors_total", kind=kind),
                      demotions=sample("xmargin_rpc_demotions_total"))
        durations = []
        for _ in range(RpcPool.DEMOTE_AFTER + 2):
            start = time.monotonic()
            header = await c.header(0)
            durations.append(time.monotonic() - start)
            assert header.hash.hex() == truth  # never the lie
        calls = bad.calls
        await c.close()
        await server.aclose()
        return durations, calls, RpcPool.DEMOTE_AFTER

    before: dict[str, float] = {}
    durations, calls, demote_after = asyncio.run(run())
    assert max(durations) < 3.0  # a hung provider costs one timeout, never a stall
    assert calls == demote_after  # demoted: not asked again after repeated failures
    # Each failure counted by its kind against the bad provider, and one demotion.
    assert sample("xmargin_rpc_errors_total", kind=kind) - before["errors"] == demote_after
    assert sample("xmargin_rpc_demotions_total") - before["demotions"] == 1


def test_every_provider_failing_is_a_typed_error(localnet: LocalNet) -> None:
    async def run() -> None:
        c = client([f"http://127.0.0.1:{free_port()}"])
        try:
            with pytest.raises(RpcError, match="eth_getBlockByNumber"):
                await c.header(0)
        finally:
            await c.close()
    asyncio.run(run())


def test_lying_proof_provider_is_passed_over(localnet: LocalNet) -> None:
    filler = StorageFiller(localnet.chain(41041, block_time_s=None))
    block = filler.fill(50, seed=9)

    async def run() -> int:
        bad = BadProvider(filler.w3.provider.endpoint_uri, "lie")
        server = serve(bad)
        url = await server.__anext__()
        c = client([url, filler.w3.provider.endpoint_uri])
        c.settings = c.settings.model_copy(update={"chain_id": 41041})
        header = await c.header(block)
        proven = await ProofFetcher(c).prove(filler.address, block, header.state_root,
                                             [filler.slot(7)])
        await c.close()
        await server.aclose()
        return proven.slots[filler.slot(7)].value

    assert asyncio.run(run()) == filler.contract.functions.data(7).call(block_identifier=block)
