"""The proof service: a position event is believed only once its storage word is proven.

For each event it recomputes the block's hash from the header the chain returns,
verifies ``eth_getProof`` for the trader's commitment slot against that header's state
root, checks the proven word equals the event's commitment and that the event's book
hashes to it, then publishes the whole book as ``venue.position_proven.v1``. Anything
that does not verify is dead-lettered with what mismatched.
"""

from __future__ import annotations

import logging

from aiokafka import ConsumerRecord

from proofs import ProofError, header_from_rpc, verify_get_proof, vyper_mapping_slot
from proofs.errors import ValueMismatch
from relayer.chain import ChainClient
from relayer.kafka import Publisher
from relayer.venue import book_commitment, commitment_base_slot
from streams import topics
from streams.records import PositionEvent, ProvenBook

log = logging.getLogger(__name__)


async def prove_event(client: ChainClient, event: PositionEvent) -> ProvenBook:
    """The proven book behind ``event``; raises ``ProofError`` when anything mismatches."""
    header = header_from_rpc(await client.block_by_hash(event.block_hash))
    if "0x" + header.hash.hex() != event.block_hash:
        raise ValueMismatch("block hash", event.block_hash, "0x" + header.hash.hex())
    expected = book_commitment(event.trader, event.collateral_wad, event.positions)
    if expected != event.commitment:
        raise ValueMismatch("event commitment", expected, event.commitment)
    slot = vyper_mapping_slot(commitment_base_slot(), bytes.fromhex(event.trader[2:]))
    answer = await client.proof(event.venue, [slot], header.number)
    verified = verify_get_proof(header.state_root, answer)
    proven = "0x" + verified.storage[slot].to_bytes(32, "big").hex()
    if proven != event.commitment:
        raise ValueMismatch(f"commitment of {event.trader} on {event.venue}", event.commitment,
                            proven)
    storage_entry = answer["storageProof"][0]
    return ProvenBook(
        event_id=event.event_id, chain_id=event.chain_id, venue=event.venue,
        trader=event.trader, block_number=header.number, block_hash=event.block_hash,
        block_timestamp=header.timestamp, state_root="0x" + header.state_root.hex(),
        commitment=event.commitment, collateral_wad=event.collateral_wad,
        positions=event.positions, account_proof=tuple(answer["accountProof"]),
        storage_slot="0x" + slot.to_bytes(32, "big").hex(),
        storage_proof=tuple(storage_entry["proof"]),
    )


class ProofService:
    def __init__(self, clients: dict[int, ChainClient], publisher: Publisher) -> None:
        self.clients = clients
        self.publisher = publisher

    async def handle(self, event: PositionEvent, message: ConsumerRecord) -> None:
        if event.superseded_in_block:
            return  # the same block's later event carries the state the slot holds
        client = self.clients.get(event.chain_id)
        if client is None:
            await self.publisher.dead_letter(message, f"unknown chain id {event.chain_id}")
            return
        try:
            book = await prove_event(client, event)
        except ProofError as e:
            await self.publisher.dead_letter(message, f"{type(e).__name__}: {e}")
            return
        await self.publisher.publish(topics.POSITION_PROVEN, event.trader, book)
