"""One listener per chain: block headers, venue position events and feed rounds.

The listener follows the head. Each header's hash is recomputed (``RpcPool.header``)
before anything of its block is published, and each new block must extend the last one
published. When it does not, the listener walks back, block by block, to the common
ancestor, publishes ``chain.reorg.v1`` naming the orphaned blocks by hash, and then
publishes the new branch: every block hash is published once, and what was published
for an orphaned hash is retracted by that record.

Finality is ``finality_blocks`` below the head, or a tag (``safe`` / ``finalized``).
Only finalized data reaches an attestation: the proof service proves a position event
once its block is final and still canonical, and price rounds are published only from
final blocks, after every provider that answers agrees on that block's hash. A reorg
that reaches a block already final, or providers that disagree on one, halt the chain
(``ChainHalted``) with each provider's view recorded as evidence and counted in the
metrics; it never continues silently.

A durable checkpoint (next block, the recent blocks' hashes, next final block) means a
restart neither skips nor repeats a block.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from bus import metrics as liveness
from bus.publisher import RecordSink
from proofs import BlockHeader
from relayer import metrics
from relayer.chain.checkpoint import Checkpoint
from relayer.chain.events import (
    ANSWER_UPDATED_TOPIC,
    OPTION_POSITION_CHANGED_TOPIC,
    POSITION_CHANGED_TOPIC,
    decode_answer_updated,
    decode_option_position_changed,
    decode_position_changed,
)
from relayer.chain.heads import watch_heads
from relayer.chain.reader import ChainReader, hash_views
from relayer.errors import ChainHalted, LogDecodeError
from relayer.statedir import StateDir, write_atomically
from wire import topics
from wire.hexstr import to_hex
from wire.records import BlockHeaderRecord, ChainReorg, PositionEvent, PriceUpdate, SourceBlock

log = logging.getLogger(__name__)

BOOK_TOPICS = (POSITION_CHANGED_TOPIC, OPTION_POSITION_CHANGED_TOPIC)

# Recent block hashes kept beyond finality: a reorg is walked back within them.
WINDOW_BEYOND_FINALITY = 128


class Listener:
    def __init__(self, chain: ChainReader, sink: RecordSink, state: StateDir,
                 feed_decimals: dict[str, int]) -> None:
        """``feed_decimals``: address (lower case) → decimals of every feed."""
        self.client = chain
        self.settings = chain.settings
        self.publisher = sink
        self.state = state
        self.checkpoint_path = state.checkpoint(self.settings.chain_id)
        self.feeds = {addr.lower(): asset for asset, addr in self.settings.price_feeds.items()}
        self.vol_feeds = {addr.lower(): asset for asset, addr in self.settings.vol_feeds.items()}
        self.pools = {addr.lower() for addr in self.settings.lending_pools}
        self.feed_decimals = feed_decimals
        self.window = self.settings.finality_blocks + WINDOW_BEYOND_FINALITY

    async def run(self, stop: asyncio.Event) -> None:
        checkpoint = Checkpoint.load(self.checkpoint_path, self.settings.start_block)
        chain = self.settings.name
        metrics.HALTED.labels(chain=chain).set(0)
        for counted in (metrics.REORGS, metrics.REORG_DEPTH, metrics.HALTS):
            counted.labels(chain=chain)  # exported at 0 before the first one
        wake = asyncio.Event()
        heads = (asyncio.create_task(watch_heads(str(self.settings.ws_url), self.settings.name,
                                                 wake, stop))
                 if self.settings.ws_url is not None else None)
        try:
            await self.follow_chain(checkpoint, wake, stop)
        finally:
            if heads is not None:
                heads.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heads

    async def follow_chain(self, checkpoint: Checkpoint, wake: asyncio.Event,
                           stop: asyncio.Event) -> None:
        chain = self.settings.name
        while not stop.is_set():
            head = await self.client.block_number()
            metrics.CHAIN_HEAD.labels(chain=chain).set(head)
            checkpoint = await self.check_tip(checkpoint, head)
            while checkpoint.next_block <= head and not stop.is_set():
                checkpoint = await self.follow(checkpoint)
                checkpoint.save(self.checkpoint_path)
            final = await self.client.finalized_height()
            while checkpoint.next_final <= min(final, checkpoint.next_block - 1):
                checkpoint = await self.finalize(checkpoint)
                checkpoint.save(self.checkpoint_path)
            metrics.PUBLISHED.labels(chain=chain).set(checkpoint.next_block - 1)
            metrics.FINAL.labels(chain=chain).set(checkpoint.next_final - 1)
            metrics.BEHIND.labels(chain=chain).set(max(0, head - (checkpoint.next_block - 1)))
            liveness.beat()
            # Until the next poll, or sooner when a new head is announced (or on stop).
            waiters = {asyncio.create_task(wake.wait()), asyncio.create_task(stop.wait())}
            _, pending = await asyncio.wait(waiters, timeout=self.settings.poll_interval_s,
                                            return_when=asyncio.FIRST_COMPLETED)
            for waiter in pending:
                waiter.cancel()
            wake.clear()

    async def follow(self, checkpoint: Checkpoint) -> Checkpoint:
        """Publish block ``next_block``, or the reorg that replaced the blocks before it."""
        header = await self.client.header(checkpoint.next_block)
        if checkpoint.recent and to_hex(header.parent_hash) != checkpoint.last_hash:
            return await self.reorg(checkpoint, header.number - 1, header)
        block_hash = to_hex(header.hash)
        chain_id = self.settings.chain_id
        await self.publisher.publish(topics.BLOCK_HEADER, str(chain_id), BlockHeaderRecord(
            chain_id=chain_id, number=header.number, hash=block_hash,
            parent_hash=to_hex(header.parent_hash), state_root=to_hex(header.state_root),
            timestamp=header.timestamp, header_rlp=to_hex(header.rlp),
        ))
        books = [*self.settings.venues, *self.settings.lending_pools,
                 *self.settings.option_venues]
        if books:
            logs = await self.client.logs(block_hash, books)
            await self.publish_logs(header, logs)
        recent = (*checkpoint.recent, (header.number, block_hash))[-self.window:]
        return Checkpoint(header.number + 1, recent, checkpoint.next_final)

    async def check_tip(self, checkpoint: Checkpoint, head: int) -> Checkpoint:
        """A reorg that ends at the same height, or lower (``anvil_rollback``), brings no
        new block to notice it by: compare the newest block we published with the chain."""
        if not checkpoint.recent:
            return checkpoint
        number, ours = checkpoint.recent[-1]
        top = min(number, head)
        header = await self.client.header(top)
        if top == number and to_hex(header.hash) == ours:
            return checkpoint
        checkpoint = await self.reorg(checkpoint, top, header)
        checkpoint.save(self.checkpoint_path)
        return checkpoint

    async def reorg(self, checkpoint: Checkpoint, start: int, header: BlockHeader) -> Checkpoint:
        """Walk back from block ``start`` to the last block we published that is still
        canonical (``header`` is the new branch's block that showed the fork); publish
        the retraction of everything after it."""
        ours = dict(checkpoint.recent)
        number = start
        while True:
            canonical = await self.client.header(number)
            if to_hex(canonical.hash) == ours.get(number):
                break
            if number < checkpoint.next_final or number not in ours:
                # A final block changed, or the fork is older than what we remember.
                raise await self.halt(number, ours.get(number), "reorg below finality")
            number -= 1
        orphaned = tuple(h for n, h in checkpoint.recent if n > number)
        chain_id = self.settings.chain_id
        record = ChainReorg(
            chain_id=chain_id,
            common_ancestor=SourceBlock(chain_id=chain_id, number=number, hash=ours[number]),
            orphaned=orphaned,
            new_head=SourceBlock(chain_id=chain_id, number=header.number,
                                 hash=to_hex(header.hash)))
        await self.publisher.publish(topics.REORG, str(chain_id), record)
        metrics.REORGS.labels(chain=self.settings.name).inc()
        metrics.REORG_DEPTH.labels(chain=self.settings.name).observe(len(orphaned))
        log.warning("reorg", extra={"chain": self.settings.name, "ancestor": number,
                                    "depth": len(orphaned)})
        recent = tuple((n, h) for n, h in checkpoint.recent if n <= number)
        return Checkpoint(number + 1, recent, checkpoint.next_final)

    async def finalize(self, checkpoint: Checkpoint) -> Checkpoint:
        """Block ``next_final`` is final: check every provider agrees on it and that it is
        the block we published, then publish its price rounds."""
        number = checkpoint.next_final
        ours = dict(checkpoint.recent).get(number)
        headers = await self.client.headers_everywhere(number)
        views = hash_views(headers)
        answered = {v for v in views.values() if v.startswith("0x")}
        if len(answered) > 1:
            raise await self.halt(number, ours, "providers disagree on a final block", views)
        # The best-ranked provider's answer (they come in rank order); asked again (and
        # failed over) if none came.
        canonical = next((h for h in headers.values() if not isinstance(h, str)), None)
        if canonical is None:
            canonical = await self.client.header(number)
        block_hash = to_hex(canonical.hash)
        if ours is not None and block_hash != ours:
            raise await self.halt(number, ours, "reorg below finality", views)
        if self.feeds or self.vol_feeds:
            logs = await self.client.logs(block_hash, [*self.settings.price_feeds.values(),
                                                       *self.settings.vol_feeds.values()])
            await self.publish_logs(canonical, logs)
        return Checkpoint(checkpoint.next_block, checkpoint.recent, number + 1)

    async def halt(self, number: int, ours: str | None, reason: str,
                   views: dict[str, str] | None = None) -> ChainHalted:
        """Record the evidence (what we published, what each provider says now) and
        return the exception that stops this chain."""
        evidence = {
            "chain": self.settings.name, "chain_id": self.settings.chain_id, "block": number,
            "reason": reason, "published_hash": ours,
            "providers": (views if views is not None
                          else hash_views(await self.client.headers_everywhere(number))),
            "detected_at": int(time.time()),
        }
        path = self.state.incident(self.settings.chain_id, number)
        write_atomically(path, json.dumps(evidence, indent=2))
        metrics.HALTS.labels(chain=self.settings.name).inc()
        metrics.HALTED.labels(chain=self.settings.name).set(1)
        return ChainHalted(f"{self.settings.name}: {reason} at block {number} "
                           f"(evidence in {path})", evidence)

    async def publish_logs(self, header: BlockHeader, logs: list[dict[str, Any]]) -> None:
        venues = {v.lower() for v in (*self.settings.venues, *self.settings.lending_pools,
                                       *self.settings.option_venues)}
        last_event: dict[tuple[str, str], int] = {}
        for entry in logs:
            if entry["address"].lower() in venues and entry["topics"][0] in BOOK_TOPICS:
                trader = "0x" + entry["topics"][1][-40:]
                last_event[(entry["address"].lower(), trader.lower())] = int(entry["logIndex"], 16)
        for entry in logs:
            try:
                await self.publish_log(header, entry, last_event)
            except LogDecodeError as e:
                topic = (topics.POSITION_EVENT if entry["topics"][0] in BOOK_TOPICS
                         else topics.VOL if entry["address"].lower() in self.vol_feeds
                         else topics.PRICE)
                await self.publisher.refuse(topic, None, json.dumps(entry).encode(), str(e),
                                            kind="log_decode")

    async def publish_log(self, header: BlockHeader, entry: dict[str, Any],
                          last_event: dict[tuple[str, str], int]) -> None:
        address = entry["address"].lower()
        block_hash = to_hex(header.hash)
        log_index = int(entry["logIndex"], 16)
        chain_id = self.settings.chain_id
        if entry["topics"][0] in BOOK_TOPICS:
            decode = (decode_option_position_changed
                      if entry["topics"][0] == OPTION_POSITION_CHANGED_TOPIC
                      else decode_position_changed)
            trader, collateral, positions, commitment = decode(entry)
            if address in self.pools:
                positions = tuple(p.model_copy(update={"kind": "lending"}) for p in positions)
            record = PositionEvent(
                event_id=f"{chain_id}:{block_hash}:{log_index}", chain_id=chain_id,
                venue=address, trader=trader, block_number=header.number, block_hash=block_hash,
                block_timestamp=header.timestamp, log_index=log_index,
                collateral_wad=collateral, positions=positions, commitment=commitment,
                superseded_in_block=last_event[(address, trader)] != log_index,
            )
            await self.publisher.publish(topics.POSITION_EVENT, trader, record)
        elif entry["topics"][0] == ANSWER_UPDATED_TOPIC and (
                address in self.feeds or address in self.vol_feeds):
            vol = address in self.vol_feeds
            asset = (self.vol_feeds if vol else self.feeds)[address]
            answer, round_id, updated_at = decode_answer_updated(entry)
            price = PriceUpdate(
                asset=asset, price_wad=answer * 10 ** (18 - self.feed_decimals[address]),
                source=f"{chain_id}:{address}", round_id=round_id, observed_at=updated_at,
                chain_id=chain_id, block_number=header.number, block_hash=block_hash,
            )
            await self.publisher.publish(topics.VOL if vol else topics.PRICE, asset, price)
