"""The agents with Faust's ``test_context()``: each hands its topic's records to the
worker in batches, decoded, and dead-letters what does not decode with its reason."""

from __future__ import annotations

import asyncio
from typing import Any

import faust

from streams.app import attach_agents
from streams.settings import StreamSettings
from wire import topics
from wire.records import PriceUpdate, ProvenBook

TRADER = "0x" + "ab" * 20
BOOK = ProvenBook(
    event_id="41001:0x" + "11" * 32 + ":0", chain_id=41001, venue="0x" + "cd" * 20,
    trader=TRADER, block_number=7, block_hash="0x" + "11" * 32, block_timestamp=1_700_000_000,
    collateral_wad=10**22, positions=(), state_root="0x" + "22" * 32,
    commitment="0x" + "33" * 32, account_proof=(), storage_slot="0x" + "44" * 32,
    storage_proof=())
PRICE = PriceUpdate(asset="ETH", price_wad=3000 * 10**18, source="41001:0x" + "ef" * 20,
                    round_id=1, observed_at=1_700_000_000, chain_id=41001, block_number=7,
                    block_hash="0x" + "11" * 32)


class FakeWorker:
    def __init__(self) -> None:
        self.batches: dict[str, list[list[Any]]] = {}

    def recorder(self, name: str) -> Any:
        async def record(batch: list[Any]) -> None:
            self.batches.setdefault(name, []).append([record for _, record in batch])
        return record

    def __getattr__(self, name: str) -> Any:
        if name.startswith("on_"):
            return self.recorder(name)
        raise AttributeError(name)


async def until(check: Any, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "the agent never handed it over"
        await asyncio.sleep(0.02)


def agents_with_fakes() -> tuple[dict[str, Any], FakeWorker, list[tuple[Any, ...]]]:
    # The broker is never contacted: test_context() feeds an in-memory channel.
    app = faust.App("xmargin-agent-test", broker="kafka://127.0.0.1:1", store="memory://",
                    web_enabled=False)
    worker = FakeWorker()
    refused: list[tuple[Any, ...]] = []

    async def refuse(event: Any, key: bytes | None, value: bytes | None, offset: int,
                     reason: str, kind: str) -> None:
        refused.append((key, value, offset, reason))

    settings = StreamSettings(batch_window_s=0.05)
    return attach_agents(app, worker, settings, refuse), worker, refused  # type: ignore[arg-type]


def test_each_agent_hands_its_decoded_records_to_the_worker() -> None:
    async def run() -> FakeWorker:
        agents, worker, refused = agents_with_fakes()
        async with agents[topics.POSITION_PROVEN].test_context() as agent:
            await agent.put(key=TRADER.encode(), value=BOOK.to_bytes())
            await until(lambda: "on_proven" in worker.batches)
        async with agents[topics.PRICE].test_context() as agent:
            await agent.put(key=b"ETH", value=PRICE.to_bytes())
            await until(lambda: "on_prices" in worker.batches)
        assert not refused
        return worker

    worker = asyncio.run(run())
    assert worker.batches["on_proven"] == [[BOOK]]
    assert worker.batches["on_prices"] == [[PRICE]]


def test_a_record_that_does_not_decode_is_refused_with_its_reason_and_the_rest_go_on() -> None:
    async def run() -> tuple[FakeWorker, list[tuple[Any, ...]]]:
        agents, worker, refused = agents_with_fakes()
        async with agents[topics.POSITION_PROVEN].test_context() as agent:
            await agent.put(key=TRADER.encode(), value=b'{"trader": "not an address"}')
            await agent.put(key=TRADER.encode(), value=BOOK.to_bytes())
            await until(lambda: bool(worker.batches.get("on_proven")) and bool(refused))
        return worker, refused

    worker, refused = asyncio.run(run())
    [(key, value, offset, reason)] = refused
    assert (key, value, offset) == (TRADER.encode(), b'{"trader": "not an address"}', 0)
    assert reason.startswith("ProvenBook: ")
    assert [b for batch in worker.batches["on_proven"] for b in batch] == [BOOK]


def test_the_reorg_and_recompute_agents_refuse_what_does_not_decode() -> None:
    async def run() -> list[tuple[Any, ...]]:
        agents, _, refused = agents_with_fakes()
        for name in (topics.REORG, topics.RECOMPUTE):
            async with agents[name].test_context() as agent:
                await agent.put(key=b"1", value=b'{"chain_id": -1}')
                await until(lambda n=name: len(refused) == 1 + (n == topics.RECOMPUTE))
        return refused

    refused = asyncio.run(run())
    assert [reason.split(":")[0] for *_, reason in refused] == ["ChainReorg", "Recompute"]
