"""The partition a key lives on, as Kafka's default partitioner (murmur2) puts it."""

from __future__ import annotations

from functools import lru_cache

from aiokafka.partitioner import murmur2


# aiokafka's murmur2 is pure Python, ~5 µs a key, and a worker asks it for every
# attestation it sends: the same traders again and again (up to ~40 MB of answers).
@lru_cache(maxsize=1 << 18)
def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2) gives ``key``: the one a
    trader's records, and so its table entry, live on."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
