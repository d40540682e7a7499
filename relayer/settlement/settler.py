"""Running one settlement order across its two chains, to the end, exactly once.

The stages, each read back from the vaults rather than remembered, so a settler killed
anywhere resumes where the chains are:

    issued   — no receipt for the order on the source: send ``debit`` (again after a
               reorg orphaned it: the same order, the same nonce, so at most one debit
               of it ever stands)
    debited  — the receipt is in the source's latest state, not yet in a final block
    final    — the receipt is in the source's newest final block: prove it there, have
               the header vouched for by the signers, send ``credit``
    queued   — a large credit waits out the destination's delay (the guardian may
               freeze it): ``release`` once it has passed
    credited — the destination paid (terminal)

and the ends that are not: ``refused`` (the vault would revert: the reason), ``expired``
(never debited before its expiry: the streams issue a new order), ``halted`` (a vault
halted a chain the order touches; waits).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from proofs.errors import ProofError
from relayer.delivery.outcome import Outcome
from relayer.delivery.sending import TransactionSender
from relayer.settlement.receipts import ReceiptProof, order_id
from relayer.settlement.vaults import VaultCall, VaultWriter, order_tuple
from wire.records import SettlementOrder

log = logging.getLogger(__name__)
ZERO = bytes(32)


class Stage(enum.Enum):
    ISSUED = "issued"
    DEBITED = "debited"
    FINAL = "final"
    QUEUED = "queued"
    CREDITED = "credited"
    REFUSED = "refused"
    EXPIRED = "expired"
    HALTED = "halted"


TERMINAL = frozenset({Stage.CREDITED, Stage.REFUSED, Stage.EXPIRED})


@dataclass(frozen=True)
class Progress:
    order: SettlementOrder
    stage: Stage
    reason: str = ""
    tx_hash: str = ""


class HeaderWitness(Protocol):
    """The signers' word that a header is a final block of its chain."""

    async def vouch(self, dst_chain: int, src_chain: int, number: int,
                    block_hash: bytes) -> list[bytes]:
        """A threshold of signatures over the destination oracle's ``SourceHeader``
        digest, sorted by signer address; raises ``NotVouched`` when too few signers
        would vouch."""
        ...


class NotVouched(Exception):
    pass


class Settler:
    def __init__(self, vaults: Mapping[int, VaultWriter],
                 senders: Mapping[int, TransactionSender], witness: HeaderWitness,
                 clock: Callable[[], float] = time.time) -> None:
        self.vaults = vaults
        self.senders = senders
        self.witness = witness
        self.clock = clock

    async def step(self, order: SettlementOrder, signatures: list[bytes]) -> Progress:
        """Read both vaults and do the one next thing the order needs."""
        src, dst = self.vaults.get(order.src_chain), self.vaults.get(order.dst_chain)
        if src is None or dst is None:
            missing = order.src_chain if src is None else order.dst_chain
            return Progress(order, Stage.REFUSED, f"chain {missing} does not settle here")
        oid = order_id(order.trader, order.nonce)
        h = order.struct_hash()
        if await dst.credited(oid):
            return Progress(order, Stage.CREDITED)
        queued, release_at = await dst.queued(oid)
        if queued != ZERO:
            if self.clock() < release_at:
                return Progress(order, Stage.QUEUED, f"in its delay until {release_at}")
            return await self.send(dst, VaultCall("release", (order_tuple(order),)), order,
                                   Stage.QUEUED)
        for vault in (src, dst):
            for chain_id in (order.src_chain, order.dst_chain):
                if await vault.halted(chain_id):
                    return Progress(order, Stage.HALTED, f"{vault.name} halted chain {chain_id}")
        final = await src.finalized_height()
        debit = await src.debit_block(oid)
        if debit is not None and debit[0] <= final and await src.receipt_of(oid, debit[0]) == h:
            return await self.credit(order, *debit)
        held = await src.receipt_of(oid, "latest")
        if held == h:
            return Progress(order, Stage.DEBITED, f"waiting for finality (final {final})")
        if held != ZERO:
            return Progress(order, Stage.REFUSED, f"nonce {order.nonce} holds another order")
        if order.expiry < self.clock():
            return Progress(order, Stage.EXPIRED, "not debited before its expiry")
        return await self.send(src, VaultCall("debit", (order_tuple(order), signatures)),
                               order, Stage.ISSUED)

    async def credit(self, order: SettlementOrder, number: int, block_hash: bytes) -> Progress:
        """Prove the receipt in the debit's own block (final by now): the block every
        attester vouches for, so their signatures are over one digest."""
        src, dst = self.vaults[order.src_chain], self.vaults[order.dst_chain]
        try:
            proof: ReceiptProof = await src.prove(order, number)
        except ProofError as e:
            return Progress(order, Stage.FINAL, f"proof at block {number}: {e}")
        if proof.header.hash != block_hash:
            return Progress(order, Stage.FINAL, f"block {number} changed under the proof")
        try:
            header_sigs = await self.witness.vouch(order.dst_chain, order.src_chain,
                                                   proof.header.number, proof.header.hash)
        except NotVouched as e:
            return Progress(order, Stage.FINAL, f"header {number} not vouched for: {e}")
        call = VaultCall("credit", (order_tuple(order), proof.header.rlp, header_sigs,
                                    list(proof.account_proof), list(proof.storage_proof)))
        return await self.send(dst, call, order, Stage.FINAL)

    async def send(self, vault: VaultWriter, call: VaultCall, order: SettlementOrder,
                   stage: Stage) -> Progress:
        """Send ``call`` if the vault would take it now. The stage stays the one it was
        sent from: the next ``step`` reads from the vaults what the transaction did (a
        credit of ``delay_threshold`` or more lands in the queue, not the venue)."""
        sender = self.senders[vault.chain_id]
        refused = await vault.simulate(call, sender.account.address)
        if refused is not None:
            return Progress(order, Stage.REFUSED if stage is Stage.ISSUED else stage,
                            f"{call.function}: {refused}")
        key = f"settle:{order.trader}:{order.nonce}:{call.function}"
        tx_hash = await sender.submit(key, call)
        result = await sender.confirm(tx_hash)
        if result.outcome is Outcome.RETRY:
            return Progress(order, stage, result.reason, tx_hash)
        sender.in_flight.put(key, None)
        if result.outcome is not Outcome.DELIVERED:
            return Progress(order, stage, f"{call.function}: {result.reason}", tx_hash)
        log.info("settlement step", extra={"trader": order.trader, "nonce": order.nonce,
                                           "call": call.function, "tx": tx_hash})
        return Progress(order, stage, f"{call.function} confirmed", tx_hash)

    async def settle(self, order: SettlementOrder, signatures: list[bytes],
                     poll_s: float = 0.5, timeout_s: float = 120.0) -> Progress:
        """``step`` until the order reaches an end (or ``queued`` with time to wait)."""
        deadline = time.monotonic() + timeout_s
        while True:
            progress = await self.step(order, signatures)
            if progress.stage in TERMINAL or time.monotonic() > deadline:
                return progress
            await asyncio.sleep(poll_s)
