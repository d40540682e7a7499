"""The keeper: liquidation plans in (``risk.liquidation.v1``), ``liquidate`` transactions
out, one keeper per chain, through the same sending machinery as the submitter
(simulated first, nonce and fees persisted before sending, fee escalation, durable
retries, a dead letter with its reason).

A leg is executed only while it is still what the plan saw: the oracle holds the
flagging attestation (or a newer one) and flags the trader now, on an attestation that
has not expired, and the venue holds the position exactly as planned. Anything else
is skipped with its reason: a recovered trader, a leg closed or resized since (by this
keeper before a restart, by another keeper, by the trader). Every leg's end is kept in
the state directory and reported on ``relayer.delivery.v1``, so a redelivered plan, or
a keeper killed mid-liquidation and restarted, closes nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from aiokafka import ConsumerRecord
from eth_account.signers.local import LocalAccount

from bus.publisher import RecordSink
from relayer.delivery.outcome import Outcome, Reason, Result, delivery_status
from relayer.delivery.retries import InFlightStore, JsonStore, RetryStore
from relayer.delivery.sending import TransactionSender
from relayer.delivery.venues import VenueWriter
from relayer.errors import RelayerError
from wire import topics
from wire.records import Delivery, Liquidation, LiquidationLeg

log = logging.getLogger(__name__)

# How long a restarted keeper waits for the receipt of a transaction it had in flight.
IN_FLIGHT_RECHECK_S = 2.0


@dataclass(frozen=True)
class LegEntry:
    """How one leg ended: ``liquidated`` (with its transaction) or ``skipped`` (why)."""

    status: str
    reason: str
    tx_hash: str | None


class LegStore(JsonStore[LegEntry]):
    def __init__(self, path: Path) -> None:
        super().__init__(path, LegEntry)


class Keeper:
    def __init__(self, venues: VenueWriter, sender: LocalAccount, publisher: RecordSink,
                 max_attempts: int, retries: RetryStore, in_flight: InFlightStore,
                 legs: LegStore, halted: Mapping[int, str] | None = None) -> None:
        self.venues = venues
        self.chain_id = venues.chain_id
        self.sender = sender
        self.publisher = publisher
        self.max_attempts = max_attempts
        self.retries = retries
        self.in_flight = in_flight
        self.legs = legs
        self.halted = halted if halted is not None else {}
        self.sending = TransactionSender(venues, sender, in_flight, "keeper")

    async def handle(self, plan: Liquidation, message: ConsumerRecord | None = None) -> None:
        for leg in plan.legs:
            if leg.chain_id != self.chain_id:
                continue
            key = f"{plan.trader}:{plan.sequence}:{leg.leg_id}"
            result = await self.execute_with_retries(plan, leg, key)
            if result.cause is not Reason.ALREADY_DONE:
                self.legs.put(key, LegEntry(
                    "liquidated" if result.outcome is Outcome.DELIVERED else
                    "dead_lettered" if result.outcome is Outcome.RETRY else "skipped",
                    result.reason or result.cause.value, result.tx_hash))
            log.info("liquidation leg", extra={**self.sending.labels, "leg": key,
                                               "outcome": result.outcome.value,
                                               "reason": result.cause.value})
            await self.publisher.publish(topics.DELIVERY, plan.trader, Delivery(
                trader=plan.trader, sequence=plan.sequence, chain_id=self.chain_id,
                status=delivery_status(result), reason=result.reason or result.cause.value,
                tx_hash=result.tx_hash, leg=leg.leg_id))

    async def execute_with_retries(self, plan: Liquidation, leg: LiquidationLeg,
                                   key: str) -> Result:
        return await self.sending.run(key, lambda: self.execute(plan, leg, key), self.retries,
                                      self.max_attempts)

    async def execute(self, plan: Liquidation, leg: LiquidationLeg, key: str) -> Result:
        done = self.legs.get(key)
        if done is not None and done.status != "dead_lettered":
            return Result(Outcome.DROPPED, Reason.ALREADY_DONE, f"already {done.status}",
                          done.tx_hash)
        if self.chain_id in self.halted:
            return Result(Outcome.RETRY, Reason.CHAIN_HALTED,
                          f"chain halted: {self.halted[self.chain_id]}")
        try:
            landed = await self.recheck_in_flight(key)
            if landed is not None:
                return landed
            skip = await self.check(plan, leg)
            if skip is not None:
                return skip
            call = await self.venues.liquidation(plan.trader, leg)
            # A replacement of our own pending transaction is not simulated: the pending
            # state already holds its effect (the leg closed), and only one of the two
            # can land.
            reverted = (None if self.in_flight.get(key) is not None
                        else await self.venues.simulate(call, self.sender.address))
            if reverted is not None:
                return Result(Outcome.DROPPED, Reason.SIMULATION_REVERTED,
                              f"simulation reverted: {reverted}")
            tx_hash = await self.sending.submit(key, call)
            result = await self.sending.confirm(tx_hash)
            if result.outcome is not Outcome.RETRY:
                self.in_flight.put(key, None)
            return result
        except RelayerError as e:
            outcome = Outcome.RETRY if e.retryable else Outcome.DROPPED
            return Result(outcome, Reason.CHAIN_ERROR, f"{type(e).__name__}: {e}")

    async def recheck_in_flight(self, key: str) -> Result | None:
        """A transaction this keeper sent for ``key`` before (a restart, a retry) that has
        been mined since: its result. ``None``: nothing in flight, or not mined yet."""
        previous = self.in_flight.get(key)
        if previous is None:
            return None
        result = await self.sending.confirm(previous.tx_hash, IN_FLIGHT_RECHECK_S)
        if result.cause is Reason.NOT_CONFIRMED:
            return None
        self.in_flight.put(key, None)
        return result

    async def check(self, plan: Liquidation, leg: LiquidationLeg) -> Result | None:
        """Why not to liquidate ``leg`` now, or ``None`` to go ahead."""
        sequence, flagged = await self.venues.flag(plan.trader)
        if sequence < plan.sequence:
            return Result(Outcome.RETRY, Reason.AWAITING_FLAG,
                          f"oracle holds sequence {sequence}, the plan's is {plan.sequence}")
        if not flagged:
            return Result(Outcome.DROPPED, Reason.NOT_FLAGGED,
                          f"trader not flagged at sequence {sequence}")
        held = await self.venues.held(plan.trader, leg)
        if held != leg.size_wad:
            return Result(Outcome.DROPPED, Reason.LEG_CHANGED,
                          f"venue holds {held}, the plan saw {leg.size_wad}")
        return None
