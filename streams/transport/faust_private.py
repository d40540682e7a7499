"""Every use of faust-streaming's private API, in one place.

Faust gives no public hook for what the worker needs here: the fetch wait of its
consumer, the end offsets it recovers a changelog to, the records a fetch returned, the
aiokafka producer under its own, how a RocksDB partition is opened, a table's sensors,
and which event a table write belongs to. Each is reached below through a small
subclass or function that turns it into a public-named hook, so the rest of
``streams`` subclasses only these. Checked against ``CHECKED_VERSION``
(``tests/streams/test_faust_private.py`` fails on any other version, and checks
that every member used still exists).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from faust.stores import rocksdb
from faust.streams import _current_event
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

CHECKED_VERSION = "0.15.3"

# (owner, member) for every private member used here: the test checks they exist.
MEMBERS = (
    (faust_aiokafka.AIOKafkaConsumerThread, "_create_worker_consumer"),
    (faust_aiokafka.AIOKafkaConsumerThread, "_highwaters"),
    (faust_aiokafka.Consumer, "_new_consumer_thread"),
    (faust_aiokafka.Consumer, "_getmany"),
    (faust_aiokafka.Producer, "_ensure_producer"),
    (faust_aiokafka.Producer, "_settings_extra"),
    (rocksdb.Store, "_open_for_partition"),
    (faust_aiokafka.Consumer, "_committed_offset"),  # set on instances: checked on one
    (faust_aiokafka.Consumer, "_thread"),  # set on instances: checked on one
    (AIOKafkaConsumer, "_fetch_max_wait_ms"),  # set on instances: checked on one
)


def make_current(event: faust.EventT) -> None:
    """Make ``event`` Faust's current event: the one whose partition a table write (and
    its changelog record) goes to."""
    _current_event.set(weakref.ref(event))


def aiokafka_producer(producer: faust_aiokafka.Producer) -> AIOKafkaProducer:
    """The started aiokafka producer under Faust's."""
    return producer._ensure_producer()


def sensor_on_set(table: faust.Table, key: Any, value: Any) -> None:
    table._sensor_on_set(table, key, value)  # type: ignore[attr-defined]


def sensor_on_del(table: faust.Table, key: Any) -> None:
    table._sensor_on_del(table, key)  # type: ignore[attr-defined]


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Hooks: ``fetch_max_wait_ms`` (Faust fixes it at 1.5 s) and ``end_offsets``."""

    fetch_max_wait_ms: int | None = None

    def _create_worker_consumer(self, transport: Any) -> AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        if self.fetch_max_wait_ms is not None:
            consumer._fetch_max_wait_ms = self.fetch_max_wait_ms  # read when it starts
        return consumer

    async def _highwaters(self, partitions: Iterable[TP]) -> Mapping[TP, int]:
        return await self.end_offsets(await super()._highwaters(list(partitions)))

    async def end_offsets(self, reported: Mapping[TP, int]) -> Mapping[TP, int]:
        """The end offsets a changelog partition is recovered to (ListOffsets' answer)."""
        return reported


class Consumer(faust_aiokafka.Consumer):
    """Hooks: ``thread_class`` and ``regroup`` (what a fetch returned, per partition)."""

    thread_class: type[ConsumerThread] = ConsumerThread

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return self.thread_class(self, loop=self.loop, beacon=self.beacon)

    async def _getmany(self, active_partitions: Any, timeout: float) -> Any:
        # Faust hands over its live set of active partitions, which a rebalance empties
        # (revoked, then paused for recovery) while aiokafka still waits on the fetch; and
        # aiokafka reads an empty set as "every assigned partition". It then returned the
        # records of partitions just taken over, Faust dropped them (none was active), and
        # aiokafka had moved past them: a survivor never worked a killed worker's last
        # books (seen on Kafka). A copy keeps the fetch to what was active when it began,
        # and nothing active fetches nothing, as Faust's own guard intends.
        if active_partitions is not None:
            active_partitions = frozenset(active_partitions)
            if not active_partitions:
                return {}
        return self.regroup(await super()._getmany(active_partitions, timeout))

    def regroup(self, fetched: Mapping[TP, list[Any]]) -> Mapping[TP, list[Any]]:
        return fetched

    async def perform_seek(self) -> None:
        await super().perform_seek()
        # Faust keeps a partition's committed offset as Kafka reports it, -1 where the
        # group has committed nothing, and then refuses every commit whose first acked
        # offset is above 0 ("a gap at the head"). One event per fetched bundle is acked
        # at its last record's offset, so on Kafka a new group never committed at all
        # (seen: no committed offset on any partition after a whole test run). Nothing
        # committed is None, as on Tansu.
        committed = self._committed_offset
        for tp, offset in list(committed.items()):
            if offset is not None and offset < 0:
                committed[tp] = None
        # Faust seeks back to the committed offset the records it fetched and then
        # dropped around a rebalance; where nothing is committed aiokafka seeks nowhere
        # and those records were lost. Nothing committed means nothing done: such a
        # stream partition starts again at its beginning (the group's "earliest"), and
        # the reducers, idempotent under at-least-once delivery, take the repeats as one.
        changelogs = self.app.tables.changelog_topics
        uncommitted = [tp for tp in self.assignment()
                       if tp.topic not in changelogs and committed.get(tp) is None]
        if uncommitted:
            await self._thread.seek_to_beginning(
                *(TopicPartition(tp.topic, tp.partition) for tp in uncommitted))


class Producer(faust_aiokafka.Producer):
    """Hook: ``extra_settings`` of the aiokafka producer (Faust's own only in a
    transaction)."""

    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), **self.extra_settings()}

    def extra_settings(self) -> dict[str, Any]:
        return {}


class Store(rocksdb.Store):
    """Hook: ``configure`` each partition's database as it is opened."""

    def _open_for_partition(self, partition: int) -> Any:
        return self.configure(super()._open_for_partition(partition))

    def configure(self, db: Any) -> Any:
        return db
