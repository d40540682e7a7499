"""The node's settlement service: each order of ``risk.settlement.v1`` gathered to the
source's signer threshold (the attesters sign it with the attestation it rode on), then
run to its end by the ``Settler``. Its progress per order is kept in the state directory
for ``xmargin node status`` and counted per stage in the metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from aiokafka import ConsumerRecord

from bus import metrics as liveness
from relayer import metrics
from relayer.delivery.gathering import SignatureBook
from relayer.delivery.retries import JsonStore
from relayer.delivery.signing import threshold_signatures
from relayer.settlement.settler import TERMINAL, Progress, Settler, Stage
from wire.eip712 import typed_data_digest
from wire.hexstr import from_hex, to_hex
from wire.records import SettlementOrder

log = logging.getLogger(__name__)
AWAITING = "awaiting signatures"


@dataclass
class SettlementEntry:
    trader: str
    nonce: int
    src_chain: int
    dst_chain: int
    amount: int
    reason_for: str  # why the order was issued (realized loss, buffer)
    stage: str
    reason: str = ""  # why it is where it is (what it waits for, why it stopped)
    tx_hash: str = ""
    updated_at: float = 0.0


class SettlementStore(JsonStore[SettlementEntry]):
    def __init__(self, path: Path) -> None:
        super().__init__(path, SettlementEntry)


class SettlementService:
    def __init__(self, settler: Settler, book: SignatureBook, oracles: Mapping[int, str],
                 signer_sets: Mapping[int, Callable[[], Awaitable[tuple[list[str], int]]]],
                 store: SettlementStore, signature_wait_s: float = 30.0,
                 poll_s: float = 1.0, clock: Callable[[], float] = time.time,
                 halted: Mapping[int, str] | None = None) -> None:
        self.settler = settler
        self.book = book
        self.oracles = oracles
        self.signer_sets = signer_sets
        self.store = store
        self.signature_wait_s = signature_wait_s
        self.poll_s = poll_s
        self.clock = clock
        # Chains whose listener halted (a reorg past finality, providers disagreeing):
        # every settlement touching one waits until the halt is lifted.
        self.halted = halted if halted is not None else {}
        for stage in (*[s.value for s in Stage], AWAITING):
            metrics.SETTLEMENTS.labels(stage=stage)
            metrics.SETTLEMENTS_IN_STAGE.labels(stage=stage).set_function(
                self.counter_of(stage))

    def counter_of(self, stage: str) -> Callable[[], float]:
        return lambda: sum(e.stage == stage for e in self.store.entries.values())

    def record(self, order: SettlementOrder, stage: str, reason: str = "",
               tx_hash: str = "") -> None:
        key = f"{order.trader}:{order.nonce}"
        before = self.store.get(key)
        if before is None or before.stage != stage:
            metrics.SETTLEMENTS.labels(stage=stage).inc()
            log.info("settlement", extra={"trader": order.trader, "nonce": order.nonce,
                                          "stage": stage, "reason": reason})
        self.store.put(key, SettlementEntry(
            order.trader, order.nonce, order.src_chain, order.dst_chain, order.amount,
            order.reason, stage, reason, tx_hash or (before.tx_hash if before else ""),
            self.clock()))

    async def handle(self, order: SettlementOrder, message: ConsumerRecord | None = None) -> None:
        """Run ``order`` to an end: credited, refused or expired (each once: a restarted
        node reads where it stands from the vaults)."""
        held = self.store.get(f"{order.trader}:{order.nonce}")
        if held is not None and held.stage in {s.value for s in TERMINAL}:
            return
        if order.src_chain not in self.oracles or order.dst_chain not in self.oracles:
            self.record(order, Stage.REFUSED.value, "a chain this node does not settle")
            return
        signatures = await self.signatures(order)
        if signatures is None:
            return
        while True:
            stopped = [f"{cid}: {self.halted[cid]}" for cid in (order.src_chain, order.dst_chain)
                       if cid in self.halted]
            if stopped:
                self.record(order, Stage.HALTED.value, "chain halted: " + "; ".join(stopped))
                await asyncio.sleep(self.poll_s)
                continue
            progress: Progress = await self.settler.step(order, signatures)
            liveness.beat()  # a settlement can take minutes: the task is not stuck
            self.record(order, progress.stage.value, progress.reason, progress.tx_hash)
            if progress.stage in TERMINAL:
                return
            await asyncio.sleep(self.poll_s)

    async def signatures(self, order: SettlementOrder) -> list[bytes] | None:
        """The threshold's signatures over the order under the source oracle's domain,
        waited for until the order expires (then ``None``, recorded as expired)."""
        digest = to_hex(typed_data_digest(order.src_chain, from_hex(self.oracles[order.src_chain]),
                                          order.struct_hash()))
        while True:
            signers, threshold = await self.signer_sets[order.src_chain]()
            counted = await self.book.gather(order.trader, order.sequence, order.src_chain,
                                             digest, signers, threshold, self.signature_wait_s)
            liveness.beat()
            if counted.complete:
                return threshold_signatures(counted.signatures, threshold)
            if self.clock() > order.expiry:
                self.record(order, Stage.EXPIRED.value, "signatures did not reach the threshold "
                                                        "before the order expired")
                return None
            why = (f"{len(counted.signatures)} of {threshold} signed; silent {counted.silent}"
                   + (f"; refused {sorted(counted.refused)}" if counted.refused else ""))
            self.record(order, AWAITING, why)
            if counted.unreachable:
                await asyncio.sleep(self.poll_s)
