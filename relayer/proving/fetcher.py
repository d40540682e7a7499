"""The I/O half of the proof builder: coalesced, batched ``eth_getProof`` calls.

Requests for the same (account, block) that arrive within ``window_s`` of each other
are merged: the union of their slots is fetched in calls of many slots each, verified
once (``proofs.builder``), and every requester gets its own slots back.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from proofs import BlockHeader
from proofs.builder import ProvenSlots, merge, plan, verify_answer
from proofs.mpt import NodeCache
from relayer.chain.reader import ChainReader


@dataclass
class _Pending:
    state_root: bytes
    slots: set[int] = field(default_factory=set)
    done: asyncio.Future[ProvenSlots] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())


class ProofFetcher:
    def __init__(self, client: ChainReader, max_slots_per_call: int = 256,
                 window_s: float = 0.01) -> None:
        self.client = client
        self.max_slots_per_call = max_slots_per_call
        self.window_s = window_s
        self.pending: dict[tuple[str, int], _Pending] = {}
        self.headers: dict[str, asyncio.Future[BlockHeader]] = {}
        self.calls = 0  # eth_getProof calls sent, for metrics and tests

    async def header(self, block_hash: str) -> BlockHeader:
        """The header of ``block_hash`` with its hash recomputed; fetched once per block."""
        if len(self.headers) > 4096:
            self.headers.clear()  # finalized headers are re-fetchable: a crude bound suffices
        future = self.headers.get(block_hash)
        if future is None:
            future = asyncio.ensure_future(self._fetch_header(block_hash))
            self.headers[block_hash] = future
        try:
            return await asyncio.shield(future)
        except Exception:
            self.headers.pop(block_hash, None)  # a failed fetch is retried by the next caller
            raise

    async def _fetch_header(self, block_hash: str) -> BlockHeader:
        return await self.client.header_by_hash(block_hash)

    async def prove(self, address: str, block_number: int, state_root: bytes,
                    slots: list[int]) -> ProvenSlots:
        """Proven values (and proofs) of ``slots`` of ``address`` at ``block_number``."""
        key = (address.lower(), block_number)
        pending = self.pending.get(key)
        if pending is None or pending.state_root != state_root:
            pending = _Pending(state_root)
            self.pending[key] = pending
            asyncio.get_running_loop().call_later(
                self.window_s, lambda: asyncio.ensure_future(self._flush(key, pending)))
        pending.slots.update(slots)
        return await asyncio.shield(pending.done)

    async def _flush(self, key: tuple[str, int], pending: _Pending) -> None:
        if self.pending.get(key) is pending:
            del self.pending[key]
        address, block_number = key
        try:
            requests = plan(address, block_number, pending.slots, self.max_slots_per_call)
            self.calls += len(requests)
            cache = NodeCache()  # nodes shared by the calls of one (account, block)

            def verified(answer: Any) -> ProvenSlots:
                return verify_answer(pending.state_root, address, answer, cache)
            parts = await asyncio.gather(*(
                self.client.proof(r.address, list(r.slots), r.block_number, parse=verified)
                for r in requests))
            pending.done.set_result(merge(parts))
        except Exception as e:
            pending.done.set_exception(e)
