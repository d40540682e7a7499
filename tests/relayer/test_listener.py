"""The listener over a fake ``ChainReader`` and a fake sink: every block once per hash,
a reorg retracted by hash back to the common ancestor, and a halt with evidence when
final history changes or providers disagree on a final block."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from proofs import BlockHeader
from relayer.chain.events import ANSWER_UPDATED_TOPIC
from relayer.chain.listener import Listener
from relayer.errors import ChainHalted
from relayer.settings import ChainSettings, KeystoreSettings
from relayer.statedir import StateDir
from tests.support.metrics import sample
from wire import topics
from wire.records import BlockHeaderRecord, ChainReorg, PriceUpdate, Record

CHAIN = 41095
FEED = "0x" + "fe" * 20
VOL_FEED = "0x" + "f0" * 20


def block_hash(number: int, branch: int) -> bytes:
    return bytes([branch]) + number.to_bytes(31, "big")


class FakeChain:
    """A chain of blocks by (number → branch); ``reorg`` moves blocks to a new branch."""

    def __init__(self, height: int, finality_blocks: int = 2) -> None:
        unused = KeystoreSettings(keystore=Path("unused.json"), password_file=Path("unused"))
        self.settings = ChainSettings(
            name="fake", chain_id=CHAIN, rpc_urls=["http://127.0.0.1:1"], oracle="0x" + "aa" * 20,
            submitter=unused, finality_blocks=finality_blocks, poll_interval_s=0.01,
            price_feeds={"ETH": FEED}, vol_feeds={"ETH": VOL_FEED})
        self.branch = dict.fromkeys(range(height + 1), 0)
        self.other_provider: dict[int, int] = {}  # a second provider's differing view

    def header_at(self, number: int, branch: int) -> BlockHeader:
        parent = block_hash(number - 1, self.branch[number - 1]) if number else b"\0" * 32
        return BlockHeader(fork="cancun", number=number, hash=block_hash(number, branch),
                           parent_hash=parent, state_root=b"\x01" * 32,
                           timestamp=1_700_000_000 + number, rlp=b"\xc0")

    def reorg(self, from_number: int, branch: int) -> None:
        for n in range(from_number, max(self.branch) + 1):
            self.branch[n] = branch

    async def block_number(self) -> int:
        return max(self.branch)

    async def finalized_height(self) -> int:
        return max(self.branch) - self.settings.finality_blocks

    async def header(self, number: int) -> BlockHeader:
        return self.header_at(number, self.branch[number])

    async def header_by_hash(self, block_hash: str) -> BlockHeader:
        raise NotImplementedError

    async def headers_everywhere(self, number: int) -> dict[str, BlockHeader | str]:
        views: dict[str, BlockHeader | str] = {"a": await self.header(number)}
        if number in self.other_provider:
            views["b"] = self.header_at(number, self.other_provider[number])
        return views

    async def logs(self, block_hash: str, addresses: list[str]) -> list[dict[str, Any]]:
        """A round of the ETH feed in every block (answer 3,000 + the block number), and
        of its volatility feed in every even block (60% + the block number in %)."""
        if FEED not in addresses:
            return []
        number = int.from_bytes(bytes.fromhex(block_hash[2:])[1:], "big")
        word = (lambda n: "0x" + n.to_bytes(32, "big").hex())  # noqa: E731
        logs = [{"address": FEED, "logIndex": "0x0",
                 "topics": [ANSWER_UPDATED_TOPIC, word((3000 + number) * 10**8), word(number)],
                 "data": word(1_700_000_000 + number)}]
        if VOL_FEED in addresses and number % 2 == 0:
            logs.append({"address": VOL_FEED, "logIndex": "0x1",
                         "topics": [ANSWER_UPDATED_TOPIC, word((60 + number) * 10**6),
                                    word(number // 2 + 1)],
                         "data": word(1_700_000_000 + number)})
        return logs

    async def proof(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


class FakeSink:
    def __init__(self) -> None:
        self.records: list[tuple[str, Record]] = []

    async def publish(self, topic: str, key: str, record: Record) -> None:
        self.records.append((topic, record))

    async def refuse(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("nothing should be refused")

    def headers(self) -> list[tuple[int, str]]:
        return [(r.number, r.hash) for t, r in self.records if isinstance(r, BlockHeaderRecord)]

    def reorgs(self) -> list[ChainReorg]:
        return [r for t, r in self.records if t == topics.REORG and isinstance(r, ChainReorg)]


async def run_until(chain: FakeChain, sink: FakeSink, state: Path,
                    done: Callable[[], bool]) -> None:
    stop = asyncio.Event()
    decimals = {FEED.lower(): 8, VOL_FEED.lower(): 8}
    task = asyncio.create_task(Listener(chain, sink, StateDir(state), decimals).run(stop))
    deadline = asyncio.get_running_loop().time() + 5
    while not done() and not task.done():
        assert asyncio.get_running_loop().time() < deadline, "the listener never got there"
        await asyncio.sleep(0.01)
    stop.set()
    await task


def hexed(number: int, branch: int) -> str:
    return "0x" + block_hash(number, branch).hex()


def test_every_block_is_published_once_in_order_and_a_restart_repeats_none(tmp_path: Path) -> None:
    chain, sink = FakeChain(height=5), FakeSink()
    asyncio.run(run_until(chain, sink, tmp_path, lambda: len(sink.headers()) == 6))
    chain.branch[6] = 0
    asyncio.run(run_until(chain, sink, tmp_path, lambda: len(sink.headers()) == 7))
    assert sink.headers() == [(n, hexed(n, 0)) for n in range(7)]
    checkpoint = json.loads(StateDir(tmp_path).checkpoint(CHAIN).read_text())
    assert checkpoint["next_block"] == 7 and checkpoint["next_final"] == 5


def test_a_reorg_is_retracted_by_hash_back_to_the_common_ancestor(tmp_path: Path) -> None:
    chain, sink = FakeChain(height=6), FakeSink()
    asyncio.run(run_until(chain, sink, tmp_path, lambda: len(sink.headers()) == 7))
    chain.reorg(5, branch=1)
    chain.branch[7] = 1
    asyncio.run(run_until(chain, sink, tmp_path, lambda: (7, hexed(7, 1)) in sink.headers()))
    [reorg] = sink.reorgs()
    assert reorg.common_ancestor.number == 4
    assert reorg.orphaned == (hexed(5, 0), hexed(6, 0))
    assert sink.headers()[-3:] == [(5, hexed(5, 1)), (6, hexed(6, 1)), (7, hexed(7, 1))]


def test_a_reorg_below_finality_halts_the_chain_with_evidence(tmp_path: Path) -> None:
    chain, sink = FakeChain(height=8), FakeSink()
    asyncio.run(run_until(chain, sink, tmp_path, lambda: len(sink.headers()) == 9))
    chain.reorg(3, branch=1)  # block 3 was final (8 - 2 = 6 is the final height)
    with pytest.raises(ChainHalted) as halted:
        asyncio.run(run_until(chain, sink, tmp_path, lambda: False))
    assert halted.value.evidence["reason"] == "reorg below finality"
    [incident] = StateDir(tmp_path).incidents(CHAIN)
    assert json.loads(incident.read_text())["published_hash"] == hexed(6, 0)
    assert not sink.reorgs()
    assert sample("xmargin_chain_halted", chain="fake") == 1


def test_providers_that_disagree_on_a_final_block_halt_it(tmp_path: Path) -> None:
    chain, sink = FakeChain(height=4), FakeSink()
    chain.other_provider[2] = 1
    with pytest.raises(ChainHalted) as halted:
        asyncio.run(run_until(chain, sink, tmp_path, lambda: False))
    assert halted.value.evidence["reason"] == "providers disagree on a final block"
    assert halted.value.evidence["providers"] == {"a": hexed(2, 0), "b": hexed(2, 1)}


def test_price_rounds_are_published_from_final_blocks_only(tmp_path: Path) -> None:
    chain, sink = FakeChain(height=9, finality_blocks=3), FakeSink()

    def prices() -> list[PriceUpdate]:
        return [r for t, r in sink.records if isinstance(r, PriceUpdate) and t == topics.PRICE]

    checkpoint = StateDir(tmp_path).checkpoint(CHAIN)

    def finalized() -> bool:  # every head published and every final block handled
        return (len(sink.headers()) == 10 and checkpoint.exists()
                and json.loads(checkpoint.read_text())["next_final"] == 7)

    asyncio.run(run_until(chain, sink, tmp_path, finalized))
    # Heads 0-9 are published; rounds only of blocks 0-6, final under 9 - 3.
    assert [p.block_number for p in prices()] == list(range(7))
    assert [p.price_wad for p in prices()][-1] == (3000 + 6) * 10**18
    assert all(p.block_hash == hexed(p.block_number, 0) for p in prices())


def test_implied_volatility_rounds_go_to_their_own_topic(tmp_path: Path) -> None:
    chain, sink = FakeChain(height=9, finality_blocks=3), FakeSink()
    checkpoint = StateDir(tmp_path).checkpoint(CHAIN)

    def finalized() -> bool:
        return (len(sink.headers()) == 10 and checkpoint.exists()
                and json.loads(checkpoint.read_text())["next_final"] == 7)

    asyncio.run(run_until(chain, sink, tmp_path, finalized))
    vols = [r for t, r in sink.records if t == topics.VOL]
    assert [(v.asset, v.block_number, v.round_id) for v in vols] == [  # type: ignore[attr-defined]
        ("ETH", n, n // 2 + 1) for n in (0, 2, 4, 6)]
    # 8 decimals: 0.66 for 66%, as 18-decimal wad.
    assert vols[-1].price_wad == 66 * 10**16  # type: ignore[attr-defined]
    assert vols[-1].source == f"{CHAIN}:{VOL_FEED}"  # type: ignore[attr-defined]
