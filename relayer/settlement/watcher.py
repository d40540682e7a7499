"""The watcher behind the delay: every vault's flows read up to each chain's final block
and held by the accountant; a queued credit (one of ``delay_threshold`` or more, waiting
``delay_s``) with no matching debit on its source is frozen by the guardian before it
can be released, and every violation is counted for an alert."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path

from bus import metrics as liveness
from bus.epoch import write_atomically
from relayer import metrics
from relayer.delivery.outcome import Outcome
from relayer.delivery.sending import TransactionSender
from relayer.settlement.accountant import Flow, Ledger, audit
from relayer.settlement.vaults import VaultCall, VaultWriter
from wire.hexstr import to_hex

log = logging.getLogger(__name__)


class Watcher:
    def __init__(self, vaults: Mapping[int, VaultWriter],
                 guardians: Mapping[int, TransactionSender], poll_s: float = 2.0,
                 findings: Path | None = None) -> None:
        self.vaults = vaults
        self.findings = findings  # where node status reads the violations found now
        self.guardians = guardians
        self.poll_s = poll_s
        self.next_block = dict.fromkeys(vaults, 0)
        self.debits: list[Flow] = []
        self.credits: list[Flow] = []
        self.queued: dict[bytes, Flow] = {}  # order id → the queued credit
        self.frozen: set[bytes] = set()
        self.ledger = Ledger()

    async def read(self) -> None:
        """Each vault's new events, up to its chain's newest final block."""
        for chain_id, vault in self.vaults.items():
            last = await vault.finalized_height()
            first = self.next_block[chain_id]
            if last < first:
                continue
            for e in await vault.events("Debited", first, last):
                self.debits.append(Flow(bytes(e["order_id"]), chain_id, e["dst_chain"],
                                        e["amount"]))
            for e in await vault.events("Credited", first, last):
                self.credits.append(Flow(bytes(e["order_id"]), e["src_chain"], chain_id,
                                         e["amount"]))
                self.queued.pop(bytes(e["order_id"]), None)
            for e in await vault.events("CreditQueued", first, last):
                self.queued[bytes(e["order_id"])] = Flow(bytes(e["order_id"]), e["src_chain"],
                                                         chain_id, e["amount"])
            self.next_block[chain_id] = last + 1

    async def step(self) -> list[bytes]:
        """Read, audit, and freeze every queued credit without its debit; the order ids
        frozen now."""
        await self.read()
        self.ledger = audit(self.debits, self.credits)
        debited = {(d.order_id, d.src, d.dst, d.amount) for d in self.debits}
        unbacked = [q for q in self.queued.values()
                    if (q.order_id, q.src, q.dst, q.amount) not in debited]
        violations = self.ledger.violations + [
            f"order {to_hex(q.order_id)} queued on {q.dst} for {q.amount} without that debit "
            f"on {q.src}" for q in unbacked]
        metrics.SETTLEMENT_VIOLATIONS.set(len(violations))
        if self.findings is not None:
            write_atomically(self.findings, json.dumps(violations))
        for v in violations:
            log.error("settlement accountant", extra={"violation": v})
        froze = []
        for q in unbacked:
            if q.order_id in self.frozen:
                continue
            if await self.vaults[q.dst].frozen(q.order_id):
                self.frozen.add(q.order_id)
                continue
            guardian = self.guardians.get(q.dst)
            if guardian is None:
                continue  # counted above; nobody here may freeze it
            call = VaultCall("freeze", (q.order_id, True))
            tx = await guardian.submit(f"freeze:{to_hex(q.order_id)}", call)
            result = await guardian.confirm(tx)
            if result.outcome is Outcome.DELIVERED:
                guardian.in_flight.put(f"freeze:{to_hex(q.order_id)}", None)
                self.frozen.add(q.order_id)
                metrics.SETTLEMENTS_FROZEN.inc()
                froze.append(q.order_id)
                log.error("queued credit frozen", extra={"order_id": to_hex(q.order_id),
                                                         "chain": q.dst, "tx": tx})
        return froze

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.step()
            liveness.beat()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.poll_s)
