"""One submitter per satellite chain: attestations in, MarginOracle transactions out.

Each delivery runs prepare → submit → confirm and ends in an explicit ``Result``
(delivered / dropped / retry, with a ``Reason``); normal outcomes are results, not
exceptions. A record whose digest this node does not reproduce is dead-lettered: it is
never signed. The chain is reached only through an ``OracleWriter``.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from aiokafka import ConsumerRecord
from eth_account.signers.local import LocalAccount

from bus.publisher import RecordSink, dead_letter
from relayer.delivery.oracle import OracleCall, OracleWriter, oracle_struct
from relayer.delivery.retries import InFlight, InFlightStore, RetryStore, with_retries
from relayer.delivery.signing import sign_digest, threshold_signatures
from relayer.errors import NonceTooLow, RelayerError
from relayer.statedir import StateDir
from wire import topics
from wire.eip712 import attestation_digest
from wire.hexstr import from_hex, to_hex
from wire.records import Attestation, ChainCredit, Delivery, DeliveryStatus

log = logging.getLogger(__name__)


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    DROPPED = "dropped"
    RETRY = "retrying"


class Reason(enum.Enum):
    """Why a delivery ended as it did; the value is its metrics label."""

    CONFIRMED = "confirmed"
    ALREADY_HELD = "already_held"          # the oracle holds this sequence or a newer one
    EXPIRED = "expired"                    # past valid_until before it could be sent
    SIMULATION_REVERTED = "simulation_reverted"
    REVERTED = "reverted"                  # mined, and reverted
    NOT_CONFIRMED = "not_confirmed"        # no receipt within confirm_timeout_s
    CHAIN_HALTED = "chain_halted"
    CHAIN_ERROR = "chain_error"            # a RelayerError talking to the chain
    RETRIES_SPENT = "retries_spent"


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    cause: Reason
    reason: str = ""  # the one line a delivery record and the retry state show
    tx_hash: str | None = None


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


def delivery_status(result: Result) -> DeliveryStatus:
    if result.outcome is Outcome.RETRY:
        return "dead_lettered"
    return "delivered" if result.outcome is Outcome.DELIVERED else "dropped"


class Submitter:
    def __init__(self, oracle: OracleWriter, sender: LocalAccount, signers: list[LocalAccount],
                 threshold: int, publisher: RecordSink, max_attempts: int,
                 retries: RetryStore, in_flight: InFlightStore | None = None,
                 halted: Mapping[int, str] | None = None) -> None:
        self.oracle = oracle
        self.chain_id = oracle.chain_id
        self.sender = sender
        self.signers = signers
        self.threshold = threshold
        self.publisher = publisher
        self.max_attempts = max_attempts
        self.retries = retries
        self.halted = halted if halted is not None else {}
        self.in_flight = in_flight or InFlightStore(
            StateDir(retries.path.parent).in_flight(self.chain_id))

    async def handle(self, attestation: Attestation, message: ConsumerRecord) -> None:
        credit = next((c for c in attestation.chains if c.chain_id == self.chain_id), None)
        if credit is None:
            return
        if local_digest(attestation, credit) != credit.digest:
            await dead_letter(self.publisher, message, f"digest for chain {self.chain_id} "
                                                       "does not match the attested fields")
            return
        result = await self.deliver_with_retries(attestation, credit)
        await self.publisher.publish(topics.DELIVERY, attestation.trader, Delivery(
            trader=attestation.trader, sequence=attestation.sequence, chain_id=self.chain_id,
            status=delivery_status(result), reason=result.reason, tx_hash=result.tx_hash,
        ))

    async def deliver_with_retries(self, attestation: Attestation,
                                   credit: ChainCredit) -> Result:
        result = Result(Outcome.RETRY, Reason.RETRIES_SPENT)

        async def attempt() -> tuple[bool, str]:
            nonlocal result
            result = await self.deliver(attestation, credit)
            if result.outcome is Outcome.RETRY:
                log.warning("delivery retry", extra={"chain": self.chain_id,
                                                      "reason": result.cause.value})
            return result.outcome is not Outcome.RETRY, result.reason

        key = f"{attestation.trader}:{attestation.sequence}"
        finished, reason = await with_retries(key, attempt, self.retries, self.max_attempts)
        if not finished:
            return Result(Outcome.RETRY, Reason.RETRIES_SPENT, reason, result.tx_hash)
        return result

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
            tx_hash = await self.submit(key, prepared)
            result = await self.confirm(tx_hash)
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
        digest = from_hex(credit.digest)
        signatures = threshold_signatures([sign_digest(s, digest) for s in self.signers],
                                          self.threshold)
        call: OracleCall = (oracle_struct(attestation, credit), signatures)
        # Simulate right before sending so a revert costs nothing.
        reverted = await self.oracle.simulate(call, self.sender.address)
        if reverted is not None:
            return Result(Outcome.DROPPED, Reason.SIMULATION_REVERTED,
                          f"simulation reverted: {reverted}")
        return call

    async def submit(self, key: str, call: OracleCall) -> str:
        """Send ``call``; a delivery already in flight is replaced with the same nonce
        and fees of max(1.1 × the last, a fresh estimate), capped: a stuck transaction
        is outbid, never queued behind."""
        tx = await self.oracle.build(call, self.sender.address)
        previous = self.in_flight.get(key)
        nonce, max_fee, tip = await self.fees(previous, tx)
        if previous is not None and max_fee <= previous.max_fee_wei:
            # At the cap: wait for the transaction already out rather than re-send it.
            return previous.tx_hash
        tx.update({"nonce": nonce, "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip})
        signed = self.sender.sign_transaction(tx)
        tx_hash = to_hex(bytes(signed.hash))
        self.in_flight.put(key, InFlight(nonce, max_fee, tip, tx_hash))
        try:
            await self.oracle.send_raw(signed.raw_transaction, nonce)
        except NonceTooLow:
            # Used by this delivery (the oracle says so next time) or by another: either
            # way a fresh nonce next attempt.
            self.in_flight.put(key, None)
            raise
        log.info("delivery sent", extra={"chain": self.chain_id, "tx": tx_hash,
                                         "nonce": nonce, "replaces": previous is not None})
        return tx_hash

    async def fees(self, previous: InFlight | None, tx: dict[str, int]
                   ) -> tuple[int, int, int]:
        """(nonce, max fee, tip) for a first send or a replacement, within the cap."""
        cap = self.oracle.max_fee_cap_wei
        if previous is None:
            nonce = await self.oracle.pending_nonce(self.sender.address)
            max_fee, tip = int(tx["maxFeePerGas"]), int(tx["maxPriorityFeePerGas"])
        else:
            nonce = previous.nonce
            max_fee = max(-(-previous.max_fee_wei * 11 // 10), int(tx["maxFeePerGas"]))
            tip = max(-(-previous.priority_fee_wei * 11 // 10), int(tx["maxPriorityFeePerGas"]))
        return nonce, min(max_fee, cap), min(tip, cap)

    async def confirm(self, tx_hash: str) -> Result:
        status = await self.oracle.receipt_status(tx_hash, self.oracle.confirm_timeout_s)
        if status is None:
            return Result(Outcome.RETRY, Reason.NOT_CONFIRMED, "receipt not seen within "
                          f"{self.oracle.confirm_timeout_s:g} s", tx_hash)
        if status != 1:
            return Result(Outcome.DROPPED, Reason.REVERTED, "transaction reverted", tx_hash)
        return Result(Outcome.DELIVERED, Reason.CONFIRMED, "", tx_hash)
