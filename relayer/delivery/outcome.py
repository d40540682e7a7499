"""How one delivery ended: an attestation to one chain's oracle, or one leg of a
liquidation plan. Normal outcomes are results, not exceptions."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from wire.records import DeliveryStatus


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    DROPPED = "dropped"
    RETRY = "retrying"


class Reason(enum.Enum):
    """Why a delivery (an attestation to one chain, a liquidation leg) ended as it did;
    the value is its metrics label."""

    CONFIRMED = "confirmed"
    ALREADY_HELD = "already_held"          # the oracle holds this sequence or a newer one
    EXPIRED = "expired"                    # past valid_until before it could be sent
    SIMULATION_REVERTED = "simulation_reverted"
    REVERTED = "reverted"                  # mined, and reverted
    NOT_CONFIRMED = "not_confirmed"        # no receipt within confirm_timeout_s
    CHAIN_HALTED = "chain_halted"
    CHAIN_ERROR = "chain_error"            # a RelayerError talking to the chain
    RETRIES_SPENT = "retries_spent"
    # Fewer than the oracle's threshold of attesters signed within the wait, or so many
    # refused that the threshold cannot be reached.
    AWAITING_SIGNATURES = "awaiting_signatures"
    REFUSED_BY_ATTESTERS = "refused_by_attesters"
    # A liquidation leg (the keeper):
    AWAITING_FLAG = "awaiting_flag"        # the flagging attestation is not on chain yet
    NOT_FLAGGED = "not_flagged"            # the trader is no longer flagged (or it expired)
    LEG_CHANGED = "leg_changed"            # the venue no longer holds the leg as planned
    ALREADY_DONE = "already_done"          # executed or skipped before (a redelivery)


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    cause: Reason
    reason: str = ""  # the one line a delivery record and the retry state show
    tx_hash: str | None = None


def delivery_status(result: Result) -> DeliveryStatus:
    if result.outcome is Outcome.RETRY:
        return "dead_lettered"
    return "delivered" if result.outcome is Outcome.DELIVERED else "dropped"
