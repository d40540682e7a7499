"""Topic names: the wire contract between processes. Versioned in the name."""

from __future__ import annotations

BLOCK_HEADER = "chain.block_header.v1"
REORG = "chain.reorg.v1"
POSITION_EVENT = "venue.position_event.v1"
POSITION_PROVEN = "venue.position_proven.v1"
PRICE = "oracle.price.v1"
# Implied volatility rounds (``PriceUpdate``, ``price_wad`` the annualised volatility).
VOL = "oracle.vol.v1"
ATTESTATION = "risk.attestation.v1"
LIQUIDATION = "risk.liquidation.v1"
# Each attester's verdict on a proposed attestation (``Verdict``): its signatures, or its
# refusal with the differences it found. Keyed by trader.
SIGNATURE = "risk.signature.v1"
DELIVERY = "relayer.delivery.v1"
# Cross-chain settlement orders (``SettlementOrder``), keyed by trader: cash to move from
# one chain's venue to another's so each venue covers its realized losses and buffers.
SETTLEMENT = "risk.settlement.v1"
# Attesters vouching for the source header of a settlement's debit (``HeaderVouch``),
# keyed by trader: what a destination vault takes on the signers' word.
HEADER_VOUCH = "risk.header_vouch.v1"
# One marker record (partition 0): the log's epoch (``bus.epoch``).
LOG_EPOCH = "xmargin.log_epoch.v1"
# Internal to the stream processor: a price change fanned out to every trader partition.
RECOMPUTE = "risk.recompute.v1"

ALL = (
    BLOCK_HEADER, REORG, POSITION_EVENT, POSITION_PROVEN, PRICE, VOL, ATTESTATION, LIQUIDATION,
    SIGNATURE, DELIVERY, SETTLEMENT, HEADER_VOUCH, RECOMPUTE, LOG_EPOCH,
)


def dead_letter(topic: str) -> str:
    """The dead-letter topic of ``topic``: refused records go there with their reason."""
    return f"{topic}.dlq"
