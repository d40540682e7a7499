"""The trader table: Faust's table, its changelog written in record batches.

Faust sends every table write to the changelog as a message of its own (a future, a
place in its producer buffer, a producer call): with one write per proven book that
machinery cost more than a quarter of a worker's time (benchmarks/bench_streams.py cut
to 100 blocks, py-spy). Here the writes since the last ``flush_changelog`` wait in order
per partition and leave as record batches. The changelog holds the same records in
the same order per key, so recovery and standbys read it as Faust wrote it; each
delivered batch records its last offset as the store's persisted offset, as Faust does
per message.

``flush_changelog`` must run before the events that caused the writes are acknowledged
(an agent calls it within its batch): a commit flushes the producer first, so the
changelog is delivered before the offsets that would skip the events are committed.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Any, cast

import faust
from faust.types import TP

from streams import tansu

log = logging.getLogger(__name__)


class BatchedChangelogTable(faust.Table):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unsent: dict[int, list[tuple[bytes, bytes | None]]] = {}

    def on_key_set(self, key: Any, value: Any) -> None:
        self._unsent.setdefault(self._partition_of(key), []).append((key, value))
        self._sensor_on_set(self, key, value)

    def on_key_del(self, key: Any) -> None:
        # A tombstone, behind the writes before it.
        self._unsent.setdefault(self._partition_of(key), []).append((key, None))
        self._sensor_on_del(self, key)

    def _partition_of(self, key: Any) -> int:
        partition = self.partition_for_key(key)  # the current event's partition
        if partition is None:
            raise TypeError(f"table {self.name}: written outside of an event")
        return partition

    async def flush_changelog(self) -> None:
        """Queue the writes since the last call on the changelog."""
        unsent, self._unsent = self._unsent, {}
        producer = cast(tansu.Producer, self.app.producer)
        topic = self.changelog_topic.get_topic_name()
        for partition, rows in unsent.items():
            for future, count in await producer.send_batches(topic, partition, rows):
                future.add_done_callback(partial(self._on_batch_sent, TP(topic, partition),
                                                 count))

    def _on_batch_sent(self, tp: TP, count: int, future: asyncio.Future[Any]) -> None:
        if future.cancelled() or future.exception() is not None:
            log.error("changelog batch of %d writes to %s failed: %r", count, tp,
                      None if future.cancelled() else future.exception())
            return
        self.data.set_persisted_offset(tp, future.result().offset + count - 1)
