"""The header witness the node's settler uses: the attesters' ``HeaderVouch`` records
from the log, each counted only if its signature recovers to a current signer of the
destination oracle over that oracle's ``SourceHeader`` digest."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from aiokafka import ConsumerRecord

from relayer.delivery.gathering import recovers_to
from relayer.delivery.signing import Signature, threshold_signatures
from relayer.settlement.settler import NotVouched
from wire.eip712 import source_header_digest
from wire.hexstr import from_hex, to_hex
from wire.records import HeaderVouch, RecordError, decode

log = logging.getLogger(__name__)


class VouchBook:
    """Every vouch read so far, by (destination, source, number, hash) and attester;
    ``vouch`` waits for a threshold of the destination's current signers."""

    def __init__(self, oracles: Mapping[int, str],
                 signer_sets: Mapping[int, Callable[[], Awaitable[tuple[list[str], int]]]],
                 wait_s: float = 30.0) -> None:
        self.oracles = oracles
        self.signer_sets = signer_sets
        self.wait_s = wait_s
        self.vouches: dict[tuple[int, int, int, str], dict[str, bytes]] = {}
        self.changed = asyncio.Event()

    def add(self, v: HeaderVouch) -> bool:
        oracle = self.oracles.get(v.dst_chain)
        if oracle is None:
            return False
        digest = source_header_digest(v.dst_chain, from_hex(oracle), v.src_chain, v.number,
                                      from_hex(v.block_hash))
        if not recovers_to(digest, from_hex(v.signature), v.attester):
            return False
        key = (v.dst_chain, v.src_chain, v.number, v.block_hash)
        self.vouches.setdefault(key, {})[v.attester] = from_hex(v.signature)
        self.changed.set()
        self.changed = asyncio.Event()
        return True

    def on_message(self, message: ConsumerRecord) -> None:
        try:
            vouch = decode(HeaderVouch, message.value)
        except RecordError as e:
            log.warning("header vouch refused", extra={"offset": message.offset,
                                                       "reason": e.reason})
            return
        if not self.add(vouch):
            log.warning("header vouch refused: not an authentic vouch for a known chain",
                        extra={"offset": message.offset})

    async def vouch(self, dst_chain: int, src_chain: int, number: int,
                    block_hash: bytes) -> list[bytes]:
        signers, threshold = await self.signer_sets[dst_chain]()
        key = (dst_chain, src_chain, number, to_hex(block_hash))
        deadline = time.monotonic() + self.wait_s
        while True:
            changed = self.changed
            held = self.vouches.get(key, {})
            signed = [Signature(a, s) for a, s in held.items() if a in signers]
            if len(signed) >= threshold:
                return threshold_signatures(signed, threshold)
            left = deadline - time.monotonic()
            if left <= 0:
                raise NotVouched(f"{len(signed)} of {threshold} attesters vouched for "
                                 f"{src_chain}:{number} {to_hex(block_hash)}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout=left)
