"""One listener per chain: finalized headers, venue position events and feed rounds.

Only blocks at least ``finality_blocks`` below the head are read, and each header's
hash is recomputed (``ChainClient.header``) before anything of that block is
published. A durable checkpoint (next block, last hash) means a restart neither skips
nor repeats a block; a parent-hash mismatch below finality halts the chain as an
incident rather than continuing silently.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proofs import BlockHeader
from relayer.chain import ChainClient
from relayer.kafka import Publisher
from relayer.venue import (
    ANSWER_UPDATED_TOPIC,
    POSITION_CHANGED_TOPIC,
    LogDecodeError,
    decode_answer_updated,
    decode_position_changed,
)
from streams import topics
from streams.records import BlockHeaderRecord, PositionEvent, PriceUpdate

log = logging.getLogger(__name__)


class ChainHalted(Exception):
    """The chain's history changed below finality: attestation for it stops."""


@dataclass(frozen=True)
class Checkpoint:
    next_block: int
    last_hash: str | None

    @staticmethod
    def load(path: Path, start_block: int) -> Checkpoint:
        if not path.exists():
            return Checkpoint(start_block, None)
        data = json.loads(path.read_text())
        return Checkpoint(int(data["next_block"]), data.get("last_hash"))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"next_block": self.next_block, "last_hash": self.last_hash}))
        tmp.replace(path)  # atomic: a crash leaves the old or the new checkpoint


class Listener:
    def __init__(self, client: ChainClient, publisher: Publisher, state_dir: Path,
                 feed_decimals: dict[str, int]) -> None:
        self.client = client
        self.settings = client.settings
        self.publisher = publisher
        self.checkpoint_path = state_dir / f"listener-{self.settings.chain_id}.json"
        self.feeds = {addr.lower(): asset for asset, addr in self.settings.price_feeds.items()}
        self.feed_decimals = feed_decimals

    async def run(self, stop: asyncio.Event) -> None:
        checkpoint = Checkpoint.load(self.checkpoint_path, self.settings.start_block)
        while not stop.is_set():
            final = await self.client.block_number() - self.settings.finality_blocks
            while checkpoint.next_block <= final and not stop.is_set():
                checkpoint = await self.publish_block(checkpoint)
                checkpoint.save(self.checkpoint_path)
            await asyncio.sleep(self.settings.poll_interval_s)

    async def publish_block(self, checkpoint: Checkpoint) -> Checkpoint:
        header = await self.client.header(checkpoint.next_block)
        block_hash = "0x" + header.hash.hex()
        parent = "0x" + header.parent_hash.hex()
        if checkpoint.last_hash is not None and parent != checkpoint.last_hash:
            raise ChainHalted(
                f"{self.settings.name}: block {header.number} has parent "
                f"0x{header.parent_hash.hex()} but block {header.number - 1} was "
                f"{checkpoint.last_hash}: reorg below finality"
            )
        chain_id = self.settings.chain_id
        await self.publisher.publish(topics.BLOCK_HEADER, str(chain_id), BlockHeaderRecord(
            chain_id=chain_id, number=header.number, hash=block_hash,
            parent_hash="0x" + header.parent_hash.hex(), state_root="0x" + header.state_root.hex(),
            timestamp=header.timestamp, header_rlp="0x" + header.rlp.hex(),
        ))
        watched = [*self.settings.venues, *self.settings.price_feeds.values()]
        if watched:
            logs = await self.client.logs(block_hash, watched)
            await self.publish_logs(header, logs)
        return Checkpoint(header.number + 1, block_hash)

    async def publish_logs(self, header: BlockHeader, logs: list[dict[str, Any]]) -> None:
        venues = {v.lower() for v in self.settings.venues}
        last_event: dict[tuple[str, str], int] = {}
        for entry in logs:
            if entry["address"].lower() in venues and entry["topics"][0] == POSITION_CHANGED_TOPIC:
                trader = "0x" + entry["topics"][1][-40:]
                last_event[(entry["address"].lower(), trader.lower())] = int(entry["logIndex"], 16)
        for entry in logs:
            try:
                await self.publish_log(header, entry, last_event)
            except LogDecodeError as e:
                topic = (topics.POSITION_EVENT if entry["topics"][0] == POSITION_CHANGED_TOPIC
                         else topics.PRICE)
                await self.publisher.refuse(topic, None, json.dumps(entry).encode(), str(e))

    async def publish_log(self, header: BlockHeader, entry: dict[str, Any],
                          last_event: dict[tuple[str, str], int]) -> None:
        address = entry["address"].lower()
        block_hash = "0x" + header.hash.hex()
        log_index = int(entry["logIndex"], 16)
        chain_id = self.settings.chain_id
        if entry["topics"][0] == POSITION_CHANGED_TOPIC:
            trader, collateral, positions, commitment = decode_position_changed(entry)
            record = PositionEvent(
                event_id=f"{chain_id}:{block_hash}:{log_index}", chain_id=chain_id,
                venue=address, trader=trader, block_number=header.number, block_hash=block_hash,
                block_timestamp=header.timestamp, log_index=log_index,
                collateral_wad=collateral, positions=positions, commitment=commitment,
                superseded_in_block=last_event[(address, trader)] != log_index,
            )
            await self.publisher.publish(topics.POSITION_EVENT, trader, record)
        elif entry["topics"][0] == ANSWER_UPDATED_TOPIC and address in self.feeds:
            asset = self.feeds[address]
            answer, round_id, updated_at = decode_answer_updated(entry)
            price = PriceUpdate(
                asset=asset, price_wad=answer * 10 ** (18 - self.feed_decimals[asset]),
                source=f"{chain_id}:{address}", round_id=round_id, observed_at=updated_at,
                chain_id=chain_id, block_number=header.number, block_hash=block_hash,
            )
            await self.publisher.publish(topics.PRICE, asset, price)
