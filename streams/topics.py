"""Topic names: the wire contract between processes. Versioned in the name."""

from __future__ import annotations

from functools import lru_cache

from aiokafka.partitioner import murmur2

# How long any consumer's fetch may wait for data. The local broker holds a fetch for the
# whole wait even when records arrive meanwhile: with Faust's 1.5 s, record to attestation
# took p50 0.5–0.7 s, p99 0.9–1.7 s at 500 records/s (benchmarks/bench_streams.py); with
# 100 ms, p50 0.1 s and p99 0.18 s at the same rate and the same throughput.
FETCH_MAX_WAIT_MS = 100

BLOCK_HEADER = "chain.block_header.v1"
REORG = "chain.reorg.v1"
POSITION_EVENT = "venue.position_event.v1"
POSITION_PROVEN = "venue.position_proven.v1"
PRICE = "oracle.price.v1"
ATTESTATION = "risk.attestation.v1"
LIQUIDATION = "risk.liquidation.v1"
DELIVERY = "relayer.delivery.v1"
# Internal to the stream processor: a price change fanned out to every trader partition.
RECOMPUTE = "risk.recompute.v1"

ALL = (
    BLOCK_HEADER, REORG, POSITION_EVENT, POSITION_PROVEN, PRICE, ATTESTATION, LIQUIDATION, DELIVERY,
    RECOMPUTE,
)


# aiokafka's murmur2 is pure Python, ~5 µs a key, and a worker asks it for every
# attestation it sends: the same traders again and again (up to ~40 MB of answers).
@lru_cache(maxsize=1 << 18)
def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2) gives ``key``: the one a
    trader's records, and so its table entry, live on."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def dead_letter(topic: str) -> str:
    """The dead-letter topic of ``topic``: refused records go there with their reason."""
    return f"{topic}.dlq"
