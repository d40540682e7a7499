"""One submitter per satellite chain: attestations in, MarginOracle transactions out.

Each delivery runs prepare → submit → confirm and ends in an explicit ``Result``
(delivered / dropped / retry, with a ``Reason``); normal outcomes are results, not
exceptions. The node signs nothing: prepare waits for the threshold of the oracle's
signer set to have signed the chain's digest (``risk.signature.v1``, gathered in a
``SignatureBook``). A record whose digest this node does not reproduce is dead-lettered
before any of that. The chain is reached only through an ``OracleWriter``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from aiokafka import ConsumerRecord
from eth_account.signers.local import LocalAccount

from bus.publisher import RecordSink, dead_letter
from relayer.delivery.gathering import SignatureBook
from relayer.delivery.oracle import OracleCall, OracleWriter, oracle_struct
from relayer.delivery.outcome import Outcome, Reason, Result, delivery_status
from relayer.delivery.retries import Awaiting, AwaitingStore, InFlightStore, RetryStore
from relayer.delivery.sending import TransactionSender
from relayer.delivery.signing import threshold_signatures
from relayer.errors import RelayerError
from relayer.statedir import StateDir
from wire import topics
from wire.eip712 import attestation_digest
from wire.hexstr import from_hex, to_hex
from wire.records import Attestation, ChainCredit, Delivery

log = logging.getLogger(__name__)


def local_digest(attestation: Attestation, credit: ChainCredit) -> str:
    digest = attestation_digest(
        chain_id=credit.chain_id, oracle=from_hex(credit.oracle),
        trader=from_hex(attestation.trader), sequence=attestation.sequence,
        equity_wad=attestation.equity_wad,
        maintenance_margin_wad=attestation.maintenance_margin_wad,
        initial_margin_wad=attestation.initial_margin_wad,
        free_collateral_wad=credit.free_collateral_wad,
        params_version=attestation.params_version,
        source_blocks_hash=from_hex(attestation.source_blocks_hash),
        source_block=credit.source_block, valid_until=attestation.valid_until,
    )
    return to_hex(digest)


class Submitter:
    def __init__(self, oracle: OracleWriter, sender: LocalAccount, book: SignatureBook,
                 publisher: RecordSink, max_attempts: int,
                 retries: RetryStore, in_flight: InFlightStore | None = None,
                 halted: Mapping[int, str] | None = None,
                 signature_wait_s: float = 30.0) -> None:
        self.oracle = oracle
        self.chain_id = oracle.chain_id
        self.sender = sender
        self.book = book
        self.signature_wait_s = signature_wait_s
        self.publisher = publisher
        self.max_attempts = max_attempts
        self.retries = retries
        self.halted = halted if halted is not None else {}
        state = StateDir(retries.path.parent)
        self.in_flight = in_flight or InFlightStore(state.in_flight(self.chain_id))
        self.awaiting = AwaitingStore(state.signatures(self.chain_id))
        self.sending = TransactionSender(oracle, sender, self.in_flight, "submitter")

    async def handle(self, attestation: Attestation, message: ConsumerRecord) -> None:
        credit = next((c for c in attestation.chains if c.chain_id == self.chain_id), None)
        if credit is None:
            return
        if local_digest(attestation, credit) != credit.digest:
            await dead_letter(self.publisher, message, f"digest for chain {self.chain_id} "
                                                       "does not match the attested fields",
                              "digest")
            return
        result = await self.deliver_with_retries(attestation, credit)
        self.awaiting.put(f"{attestation.trader}:{attestation.sequence}", None)
        await self.publisher.publish(topics.DELIVERY, attestation.trader, Delivery(
            trader=attestation.trader, sequence=attestation.sequence, chain_id=self.chain_id,
            status=delivery_status(result), reason=result.reason, tx_hash=result.tx_hash,
        ))

    async def deliver_with_retries(self, attestation: Attestation,
                                   credit: ChainCredit) -> Result:
        return await self.sending.run(f"{attestation.trader}:{attestation.sequence}",
                                      lambda: self.deliver(attestation, credit),
                                      self.retries, self.max_attempts)

    async def deliver(self, attestation: Attestation, credit: ChainCredit) -> Result:
        key = f"{attestation.trader}:{attestation.sequence}"
        if self.chain_id in self.halted:
            # This chain's history changed below finality: nothing more is attested on it
            # until an operator has looked (the delivery waits, visibly, in its retries).
            return Result(Outcome.RETRY, Reason.CHAIN_HALTED,
                          f"chain halted: {self.halted[self.chain_id]}")
        try:
            prepared = await self.prepare(attestation, credit)
            if isinstance(prepared, Result):
                # Nothing (more) to send: a transaction still in flight for it, if any,
                # landed (the oracle holds the sequence) or no longer matters.
                self.in_flight.put(key, None)
                return prepared
            tx_hash = await self.sending.submit(key, prepared)
            result = await self.sending.confirm(tx_hash)
            if result.outcome is not Outcome.RETRY:
                self.in_flight.put(key, None)
            return result
        except RelayerError as e:
            outcome = Outcome.RETRY if e.retryable else Outcome.DROPPED
            return Result(outcome, Reason.CHAIN_ERROR, f"{type(e).__name__}: {e}")

    async def prepare(self, attestation: Attestation, credit: ChainCredit
                      ) -> OracleCall | Result:
        """The contract call to send, or a ``Result`` when there is nothing to send."""
        held = await self.oracle.latest_sequence(attestation.trader)
        if held >= attestation.sequence:
            return Result(Outcome.DROPPED, Reason.ALREADY_HELD,
                          f"oracle already holds sequence {held}")
        if attestation.valid_until < time.time():
            return Result(Outcome.DROPPED, Reason.EXPIRED, "attestation expired before delivery")
        signers, threshold = await self.oracle.signer_set()
        counted = await self.book.gather(attestation.trader, attestation.sequence,
                                         self.chain_id, credit.digest, signers, threshold,
                                         self.signature_wait_s)
        self.awaiting.put(f"{attestation.trader}:{attestation.sequence}", Awaiting(
            threshold, sorted(s.signer for s in counted.signatures),
            {a: list(d) for a, d in counted.refused.items()}, counted.silent))
        if counted.unreachable:
            refusals = "; ".join(f"{a}: {' | '.join(d)}" for a, d in counted.refused.items())
            return Result(Outcome.DROPPED, Reason.REFUSED_BY_ATTESTERS,
                          f"{len(counted.refused)} of {len(signers)} attesters refused "
                          f"(threshold {threshold}): {refusals}")
        if not counted.complete:
            return Result(Outcome.RETRY, Reason.AWAITING_SIGNATURES,
                          f"{len(counted.signatures)} of {threshold} signatures; silent: "
                          f"{', '.join(counted.silent)}")
        call: OracleCall = (oracle_struct(attestation, credit),
                            threshold_signatures(counted.signatures, threshold))
        # Simulate right before sending so a revert costs nothing.
        reverted = await self.oracle.simulate(call, self.sender.address)
        if reverted is not None:
            return Result(Outcome.DROPPED, Reason.SIMULATION_REVERTED,
                          f"simulation reverted: {reverted}")
        return call
