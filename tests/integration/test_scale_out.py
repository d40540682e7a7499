"""Two Faust workers share the partitions; one is SIGKILLed; the other takes its
partitions over and recovers the trader table from the changelog."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bus.admin import ensure_topics
from devnet.localnet import LocalNet, free_port
from tests.support.configs import node_config
from wire import topics
from wire.records import Attestation, Position, PriceUpdate, ProvenBook

pytestmark = pytest.mark.integration
WAD = 10**18
T0 = 1_700_000_000
TRADERS = [f"0x{i:040x}" for i in range(1, 25)]


def proven(trader: str, block: int, size: float) -> ProvenBook:
    block_hash = f"0x{block:064x}"
    return ProvenBook(
        event_id=f"1:{block_hash}:0", chain_id=1, venue="0x" + "11" * 20, trader=trader,
        block_number=block, block_hash=block_hash, block_timestamp=T0 + block,
        state_root="0x" + "00" * 32, commitment="0x" + "22" * 32, collateral_wad=10_000 * WAD,
        positions=(Position(market="ETH", size_wad=int(size * WAD), entry_price_wad=3000 * WAD),),
        account_proof=(), storage_slot="0x" + "00" * 32, storage_proof=(),
    )


async def produce(bootstrap: str, records: list[tuple[str, str, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for topic, key, value in records:
            await producer.send_and_wait(topic, key=key.encode(), value=value)
    finally:
        await producer.stop()


async def attestations(bootstrap: str, wanted: int, timeout_s: float) -> list[Attestation]:
    """The first ``wanted`` distinct (trader, sequence) attestations, in log order. A
    worker killed between an attestation and its state's changelog write emits that
    sequence number again (the documented repeat): a copy is not counted twice."""
    consumer = AIOKafkaConsumer(topics.ATTESTATION, bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    seen: dict[tuple[str, int], Attestation] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while len(seen) < wanted and time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                for m in messages:
                    a = Attestation.model_validate_json(m.value)
                    seen.setdefault((a.trader, a.sequence), a)
    finally:
        await consumer.stop()
    return list(seen.values())


def worker_config(tmp_path: Path, broker: str, app_id: str) -> Path:
    """A node config for workers only (no chain is contacted by ``xmargin worker``)."""
    return node_config(tmp_path / "node.toml", bootstrap=broker, app_id=app_id,
                       chains=((1, "0x" + "aa" * 20),))


def worker(localnet: LocalNet, name: str, config: Path, data_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "XMARGIN__STREAMS__DATA_DIR": str(data_dir),
           "XMARGIN__STREAMS__METRICS_PORT": str(free_port())}
    return localnet.start(name, [sys.executable, "-m", "xmargin.cli", "worker", "--config",
                                 str(config)], env=env)


def test_killed_workers_partitions_recover_in_the_other(localnet: LocalNet, broker: str,
                                                        tmp_path: Path) -> None:
    config = worker_config(tmp_path, broker, "scale-out")
    asyncio.run(ensure_topics(broker, 4))
    first = worker(localnet, "worker-1", config, tmp_path / "w1")
    second = worker(localnet, "worker-2", config, tmp_path / "w2")
    price = PriceUpdate(asset="ETH", price_wad=3000 * WAD, source="feed", round_id=1,
                        observed_at=T0, chain_id=1, block_number=1, block_hash="0x" + "33" * 32)
    # Books may reach the worker before the price: its first price of an asset
    # re-margins every holder, so nothing waits for the price to be seen first.
    asyncio.run(produce(broker, [(topics.PRICE, "ETH", price.to_bytes())]))
    asyncio.run(produce(broker, [(topics.POSITION_PROVEN, t, proven(t, 10, 1.0).to_bytes())
                                 for t in TRADERS]))
    before = asyncio.run(attestations(broker, len(TRADERS), 90))
    assert {a.trader for a in before} == set(TRADERS)
    assert first.poll() is None
    first.send_signal(signal.SIGKILL)  # no goodbye: the group finds out by timeout
    first.wait()
    asyncio.run(produce(broker, [(topics.POSITION_PROVEN, t, proven(t, 20, 2.0).to_bytes())
                                 for t in TRADERS]))
    after = asyncio.run(attestations(broker, 2 * len(TRADERS), 120))
    by_trader: dict[str, list[Attestation]] = {}
    for a in after:
        by_trader.setdefault(a.trader, []).append(a)
    for trader in TRADERS:
        history = by_trader[trader]
        # The survivor continued the sequence (state recovered), it did not restart at 1,
        # and it margined the new book (2 ETH) on top of the recovered one.
        assert [a.sequence for a in history] == [1, 2], trader
        assert history[-1].book_events == (proven(trader, 20, 2.0).event_id,)
        assert history[-1].maintenance_margin_wad > history[0].maintenance_margin_wad

    # The table's local stores write no RocksDB log: the changelog is the durable copy.
    logs = list((tmp_path / "w2").rglob("traders-*.db/*.log"))
    assert logs and all(f.stat().st_size == 0 for f in logs), logs

    # The killed worker comes back on its own data directory, whose store lost what it
    # had not flushed, and takes every partition over when the survivor is killed too:
    # it reads the rest from the changelog and continues every sequence.
    # Joined or not yet when the survivor dies, it ends up with every partition.
    worker(localnet, "worker-3", config, tmp_path / "w1")
    second.send_signal(signal.SIGKILL)
    second.wait()
    asyncio.run(produce(broker, [(topics.POSITION_PROVEN, t, proven(t, 30, 3.0).to_bytes())
                                 for t in TRADERS]))
    last = asyncio.run(attestations(broker, 3 * len(TRADERS), 120))
    for trader in TRADERS:
        assert [a.sequence for a in last if a.trader == trader] == [1, 2, 3], trader
