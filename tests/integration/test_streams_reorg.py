"""A chain.reorg.v1 record retracts the books proven in orphaned blocks: the trader's
next attestation is computed from the pre-reorg books again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bus.admin import ensure_topics
from devnet.localnet import LocalNet
from tests.integration.test_scale_out import (
    T0,
    WAD,
    attestations,
    produce,
    proven,
    worker,
    worker_config,
)
from wire import topics
from wire.records import ChainReorg, PriceUpdate, SourceBlock

pytestmark = pytest.mark.integration
TRADER = "0x" + "7e" * 20


def test_reorg_retraction_restores_the_pre_reorg_state(localnet: LocalNet, broker: str,
                                                       tmp_path: Path) -> None:
    asyncio.run(ensure_topics(broker, 4))
    worker(localnet, "worker", worker_config(tmp_path, broker, "reorg"), tmp_path / "w")
    price = PriceUpdate(asset="ETH", price_wad=3000 * WAD, source="feed", round_id=1,
                        observed_at=T0, chain_id=1, block_number=1, block_hash="0x" + "33" * 32)
    # Books may reach the worker before the price: its first price of an asset
    # re-margins every holder, so nothing waits for the price to be seen first.
    asyncio.run(produce(broker, [(topics.PRICE, "ETH", price.to_bytes())]))
    kept, orphan = proven(TRADER, 10, 1.0), proven(TRADER, 12, 3.0)
    asyncio.run(produce(broker, [(topics.POSITION_PROVEN, TRADER, kept.to_bytes())]))
    first = asyncio.run(attestations(broker, 1, 90))
    asyncio.run(produce(broker, [(topics.POSITION_PROVEN, TRADER, orphan.to_bytes())]))
    second = asyncio.run(attestations(broker, 2, 60))
    assert [a.book_events for a in second] == [(kept.event_id,), (orphan.event_id,)]
    reorg = ChainReorg(
        chain_id=1, common_ancestor=SourceBlock(chain_id=1, number=11, hash="0x" + "ab" * 32),
        orphaned=(orphan.block_hash,),
        new_head=SourceBlock(chain_id=1, number=13, hash="0x" + "cd" * 32))
    asyncio.run(produce(broker, [(topics.REORG, "1", reorg.to_bytes())]))
    third = asyncio.run(attestations(broker, 3, 60))
    assert len(third) == 3
    restored = third[-1]
    assert restored.sequence == 3 and restored.book_events == (kept.event_id,)
    assert restored.maintenance_margin_wad == first[0].maintenance_margin_wad
    assert restored.equity_wad == first[0].equity_wad
