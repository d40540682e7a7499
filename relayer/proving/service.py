"""The proof service: a position event is believed only once its storage word is proven.

For each event it recomputes the block's hash from the header the chain returns,
verifies ``eth_getProof`` for the trader's commitment slot against that header's state
root, checks the proven word equals the event's commitment and that the event's book
hashes to it, then publishes the whole book as ``venue.position_proven.v1``. Anything
that does not verify is dead-lettered with what mismatched. Events of one consumer
batch are proven concurrently, so the fetcher coalesces their slots per (venue, block).
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import ConsumerRecord

from bus.publisher import RecordSink, dead_letter
from proofs import ProofError
from proofs.builder import Layout, MappingSlots
from proofs.errors import ValueMismatch
from relayer import metrics
from relayer.chain.events import commitment_base_slot
from relayer.chain.reader import ChainReader
from relayer.proving.fetcher import ProofFetcher
from wire import topics
from wire.commitment import book_commitment
from wire.hexstr import from_hex, to_hex, word_hex
from wire.records import PositionEvent, ProvenBook

log = logging.getLogger(__name__)
COMMITMENTS = MappingSlots(Layout.VYPER, commitment_base_slot())


async def prove_event(fetcher: ProofFetcher, event: PositionEvent) -> ProvenBook:
    """The proven book behind ``event``; raises ``ProofError`` when anything mismatches."""
    header = await fetcher.header(event.block_hash)
    if to_hex(header.hash) != event.block_hash:
        raise ValueMismatch("block hash", event.block_hash, to_hex(header.hash))
    expected = book_commitment(event.trader, event.collateral_wad, event.positions)
    if expected != event.commitment:
        raise ValueMismatch("event commitment", event.commitment, expected)
    slot = COMMITMENTS.slot_of(from_hex(event.trader))
    proven = await fetcher.prove(event.venue, header.number, header.state_root, [slot])
    word = word_hex(proven.slots[slot].value)
    if word != event.commitment:
        raise ValueMismatch(f"commitment of {event.trader} on {event.venue}", event.commitment,
                            word)
    return ProvenBook(
        event_id=event.event_id, chain_id=event.chain_id, venue=event.venue,
        trader=event.trader, block_number=header.number, block_hash=event.block_hash,
        block_timestamp=header.timestamp, state_root=to_hex(header.state_root),
        commitment=event.commitment, collateral_wad=event.collateral_wad,
        positions=event.positions, account_proof=proven.account_proof,
        storage_slot=word_hex(slot),
        storage_proof=proven.slots[slot].proof,
    )


class ProofService:
    def __init__(self, clients: dict[int, ChainReader], publisher: RecordSink,
                 max_slots_per_call: int = 256) -> None:
        self.clients = clients
        self.fetchers = {chain_id: ProofFetcher(client, max_slots_per_call)
                         for chain_id, client in clients.items()}
        self.publisher = publisher
        self.final: dict[int, tuple[float, int]] = {}  # chain → (asked at, final height)
        for client in clients.values():  # exported at 0 before the first event
            for counted in (metrics.PROOF_QUEUE, metrics.PROOFS, metrics.PROOF_SECONDS):
                counted.labels(chain=client.settings.name)

    async def finalized_height(self, chain_id: int) -> int:
        # Many events wait on the same few chains: ask each at most every poll interval.
        client = self.clients[chain_id]
        asked, height = self.final.get(chain_id, (-1e9, -1))
        now = asyncio.get_running_loop().time()
        if now - asked >= client.settings.poll_interval_s:
            height = await client.finalized_height()
            self.final[chain_id] = (now, height)
        return height

    async def until_final(self, event: PositionEvent) -> bool:
        """Wait until ``event``'s block is final; is it still canonical then?"""
        client = self.clients[event.chain_id]
        while await self.finalized_height(event.chain_id) < event.block_number:
            await asyncio.sleep(client.settings.poll_interval_s)
        canonical = await client.header(event.block_number)
        return to_hex(canonical.hash) == event.block_hash

    async def handle(self, event: PositionEvent, message: ConsumerRecord) -> None:
        if event.superseded_in_block:
            return  # the same block's later event carries the state the slot holds
        fetcher = self.fetchers.get(event.chain_id)
        if fetcher is None:
            await dead_letter(self.publisher, message, f"unknown chain id {event.chain_id}",
                              "unknown_chain")
            return
        chain = self.clients[event.chain_id].settings.name
        queue = metrics.PROOF_QUEUE.labels(chain=chain)
        queue.inc()
        try:
            await self.prove_and_publish(fetcher, event, message, chain)
        finally:
            queue.dec()

    async def prove_and_publish(self, fetcher: ProofFetcher, event: PositionEvent,
                                message: ConsumerRecord, chain: str) -> None:
        # Only final data is attested: wait for finality. An event of a block that did not
        # stay canonical was retracted by the listener's chain.reorg.v1; it is not proven.
        if not await self.until_final(event):
            log.info("event of an orphaned block not proven", extra={
                "event": event.event_id, "chain": chain})
            return
        started = time.monotonic()
        try:
            book = await prove_event(fetcher, event)
        except ProofError as e:
            metrics.PROOF_FAILURES.labels(chain=chain, reason=type(e).__name__).inc()
            await dead_letter(self.publisher, message, f"{type(e).__name__}: {e}", "proof")
            return
        metrics.PROOF_SECONDS.labels(chain=chain).observe(time.monotonic() - started)
        await self.publisher.publish(topics.POSITION_PROVEN, event.trader, book)
        metrics.PROOFS.labels(chain=chain).inc()
