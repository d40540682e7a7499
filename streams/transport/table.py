"""The trader table: Faust's table, its changelog written in record batches.

Faust sends every table write to the changelog as a message of its own (a future, a
place in its producer buffer, a producer call): with one write per proven book that
machinery cost more than a quarter of a worker's time. Here the writes since the last
``flush_changelog`` wait in order per partition and leave as record batches. The
changelog holds the same records in the same order per key, so recovery and standbys
read it as Faust wrote it; each delivered batch records its last offset as the store's
persisted offset, as Faust does per message.

``flush_changelog`` must run before the events that caused the writes are acknowledged
(an agent calls it within its batch): it returns once the broker has every write, so
no offset is committed past an event whose state is not in the changelog.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any, cast

import faust
import rocksdict
from faust.types import TP

from streams.errors import WriteOutsideEvent
from streams.transport import batches, faust_private
from streams.transport.driver import Producer


class ChangelogBackedStore(faust_private.Store):
    """Faust's RocksDB store, written without RocksDB's write-ahead log.

    The changelog is the table's durable copy; the local store is a cache of it that a
    restart reads before it reads the changelog from the store's persisted offset on.
    Without the log, a worker killed loses at most its writes since RocksDB's last
    memtable flush: those writes and the persisted offsets that cover them alike (both
    are writes to the same database), so a restart reads them back from the changelog.
    With the log it kept them, including writes whose changelog records never left:
    a state ahead of the changelog.
    """

    def configure(self, db: Any) -> Any:
        options = rocksdict.WriteOptions()
        options.disable_wal = True  # type: ignore[method-assign,assignment]  # a property
        db.set_write_options(options)
        return db


# Registered as a Faust store under this name (the ``faust.stores`` entry point).
STORE_SCHEME = "rocksdb-changelog"


def store_url(table_name: str) -> str:
    """The ``store`` of a table whose local state is a ChangelogBackedStore, in the
    files Faust's ``rocksdb://`` would use. With a path: Faust takes a store URL without
    one (``rocksdb-changelog://``) for none given, and uses the app's."""
    return f"{STORE_SCHEME}:{table_name}"


class BatchedChangelogTable(faust.Table):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unsent: dict[int, list[tuple[bytes, bytes | None]]] = {}

    def on_key_set(self, key: Any, value: Any) -> None:
        self._unsent.setdefault(self._partition_of(key), []).append((key, value))
        faust_private.sensor_on_set(self, key, value)

    def on_key_del(self, key: Any) -> None:
        # A tombstone, behind the writes before it.
        self._unsent.setdefault(self._partition_of(key), []).append((key, None))
        faust_private.sensor_on_del(self, key)

    def _partition_of(self, key: Any) -> int:
        partition = self.partition_for_key(key)  # the current event's partition
        if partition is None:
            raise WriteOutsideEvent(self.name)
        return partition

    async def flush_changelog(self) -> None:
        """Send the writes since the last call to the changelog, and wait until the
        broker has them all, sending them again while it refuses (``batches.deliver``):
        the events that caused them are acknowledged after this, and a commit past an
        event whose state never reached the changelog would lose that state for the
        next worker of its partition."""
        unsent, self._unsent = self._unsent, {}
        if not unsent:
            return
        producer = cast(Producer, self.app.producer).aiokafka()
        topic = self.changelog_topic.get_topic_name()

        async def send() -> list[asyncio.Future[Any]]:
            sent = []
            for partition, rows in unsent.items():
                for future, count in await batches.send_batches(producer, topic, partition,
                                                                rows):
                    future.add_done_callback(partial(
                        self._on_batch_sent, TP(topic, partition), count))
                    sent.append(future)
            return sent

        await batches.deliver(send, f"{sum(map(len, unsent.values()))} write(s) to {topic}")

    def _on_batch_sent(self, tp: TP, count: int, future: asyncio.Future[Any]) -> None:
        # A batch refused is sent again (and logged) by ``flush_changelog``.
        if not future.cancelled() and future.exception() is None:
            self.data.set_persisted_offset(tp, future.result().offset + count - 1)
