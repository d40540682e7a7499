"""The Faust app: thin agents handing their batches to a ``RiskWorker``.

Topics are keyed by trader (books, attestations) and by asset (prices). The trader
table is keyed like its stream (co-partitioned); every worker folds the whole price
topic into its own view (``price_view``) because every trader's margin needs every
price.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import partial
from typing import Any, cast

import faust

from bus import epoch
from bus import metrics as bus_metrics
from bus.admin import SINGLE, Cluster, create_missing, describe, wait_known
from bus.consumer import tail_of
from engine import MarginParams
from streams import intake
from streams import metrics as worker_metrics
from streams.heap import LongLivedHeap
from streams.price_view import PriceView
from streams.settings import StreamSettings
from streams.transport import batches, driver, faust_private, table
from streams.worker import Origin, RiskWorker
from wire import topics
from wire.records import ChainReorg, DeadLetter, PriceUpdate, ProvenBook, Recompute, Record

Handler = Callable[[Any], Awaitable[None]]
LAG_EVERY_S = 5.0
log = logging.getLogger(__name__)


def raw_topic(app: faust.App, name: str, partitions: int) -> faust.TopicT:
    """A topic of raw bytes: pydantic, not Faust, owns the records' schema."""
    return app.topic(name, key_serializer="raw", value_serializer="raw",
                     partitions=partitions)


class WorkerApp(faust.App):
    """Faust's app, with what the cluster offers (``bus.admin.Cluster``): its producer
    is idempotent where the broker grants producer ids (``driver.Producer``)."""

    cluster: Cluster = SINGLE


def faust_app(settings: StreamSettings, bootstrap: str,
              cluster: Cluster = SINGLE) -> faust.App:
    app = WorkerApp(
        settings.app_id,
        broker=f"{driver.SCHEME}://{bootstrap}",
        store="rocksdb://",
        datadir=str(settings.data_dir),
        topic_partitions=settings.partitions,
        topic_allow_declare=True,
        web_enabled=False,
        producer_acks=-1,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        broker_rebalance_timeout=settings.session_timeout_s,
        consumer_auto_offset_reset="earliest",
        producer_max_batch_size=settings.producer_max_batch_bytes,
        # The agents get bundles (streams.transport.bundles) of up to a fetch's worth of
        # a partition: ~1,000 proven books at 4 MB. Flow control counts bundles, so few
        # are buffered per stream (Faust's default of 4,096 would be millions of records).
        consumer_max_fetch_size=4 << 20,
        stream_buffer_maxsize=16,
        # The changelog and Faust's own topics, replicated as the wire topics are.
        topic_replication_factor=cluster.replication,
    )
    app.cluster = cluster
    return app


class TraderTable:
    """The worker's ``StateTable``: the Faust table, keys and values raw bytes (pydantic,
    not Faust, owns the schema), its changelog in record batches."""

    def __init__(self, app: faust.App, partitions: int) -> None:
        self.table = cast(table.BatchedChangelogTable, app.tables.add(
            table.BatchedChangelogTable(
                app, name="traders", beacon=app.tables.beacon, partitions=partitions,
                key_type=bytes, value_type=bytes, store=table.store_url("traders"))))

    def items(self) -> Iterable[tuple[bytes, bytes]]:
        return self.table.items()

    def put(self, key: bytes, value: bytes, origin: Origin) -> None:
        # Faust stores a key, and writes its changelog, in the partition of the current
        # event; a batch spans partitions, so each write names the event it comes from.
        faust_private.make_current(origin.event)
        self.table[key] = value

    async def flush(self) -> None:
        await self.table.flush_changelog()


class BrokerOutput:
    """The worker's ``RiskOutput``: the producer directly, in record batches (Faust's
    Topic.send machinery, or one producer call per record, costs more than the record),
    each send repeated until the broker takes it (``batches.deliver``)."""

    def __init__(self, app: faust.App, recompute: faust.TopicT, partitions: int,
                 bootstrap: str) -> None:
        self.app = app
        self.recompute = recompute
        self.partitions = partitions
        self.bootstrap = bootstrap

    async def send(self, attestations: list[tuple[bytes, bytes]],
                   liquidations: list[tuple[bytes, bytes]],
                   settlements: Sequence[tuple[bytes, bytes]] = ()) -> None:
        producer = cast(driver.Producer, self.app.producer).aiokafka()

        async def send() -> list[asyncio.Future[Any]]:
            sent = await batches.send_keyed(producer, topics.ATTESTATION, attestations)
            if liquidations:
                sent += await batches.send_keyed(producer, topics.LIQUIDATION, liquidations)
            if settlements:
                sent += await batches.send_keyed(producer, topics.SETTLEMENT, list(settlements))
            return sent

        await batches.deliver(send, f"{len(attestations)} attestation(s), "
                                    f"{len(liquidations)} liquidation plan(s)")

    async def fan_out(self, work: Recompute) -> None:
        for partition in range(self.partitions):
            await self.recompute.send(value=work.to_bytes(), partition=partition)

    async def recent_attestations(self, partitions: set[int], window: int | None
                                  ) -> list[bytes]:
        return await tail_of(self.bootstrap, topics.ATTESTATION, partitions, window)


def attach_agents(app: faust.App, worker: RiskWorker, settings: StreamSettings,
                  refuse: intake.Refuse, halted: asyncio.Event | None = None
                  ) -> dict[str, faust.types.AgentT]:
    """One agent per topic the worker reads, each handing its batches to ``worker``
    (and their measures to a ``BatchWatch``, its lag refreshed on a timer)."""
    watch = BatchWatch(app)

    async def lag() -> None:
        watch.lag()
    app.timer(LAG_EVERY_S, name="xmargin.lag")(lag)
    handlers: tuple[tuple[str, type[Record], Handler], ...] = (
        (topics.PRICE, PriceUpdate, worker.on_prices),
        (topics.VOL, PriceUpdate, worker.on_vols),
        (topics.REORG, ChainReorg, worker.on_reorgs),
        (topics.RECOMPUTE, Recompute, worker.on_recompute),
        (topics.POSITION_PROVEN, ProvenBook, worker.on_proven),
    )
    agents = {}
    for name, model, handle in handlers:
        channel = raw_topic(app, name, settings.partitions)
        agents[name] = app.agent(channel, name=f"xmargin.{name}")(
            agent_over(name, model, handle, settings, refuse, watch, halted))
    return agents


def agent_over(topic: str, model: type[Record], handle: Handler, settings: StreamSettings,
               refuse: intake.Refuse, watch: BatchWatch, halted: asyncio.Event | None = None
               ) -> Callable[[faust.StreamT], Awaitable[None]]:
    task = f"agent:{topic}"
    bus_metrics.TASK_RESTARTS.labels(task=task)  # shown at 0 before the first crash

    async def agent(stream: faust.StreamT) -> None:
        try:
            await work(stream)
        except Exception:
            # Faust's supervisor restarts a crashed agent; the count says it did.
            bus_metrics.TASK_RESTARTS.labels(task=task).inc()
            raise

    async def work(stream: faust.StreamT) -> None:
        async for batch in intake.batches(stream, model, settings.batch_max_records,
                                          settings.batch_window_s, refuse):
            if halted is not None and halted.is_set():
                # The log vanished: work nothing and acknowledge nothing, for ever (the
                # metric and the incident say why; an operator stops the worker).
                await asyncio.Event().wait()
            started = time.monotonic()
            await handle(batch)
            watch.batch(topic, batch, time.monotonic() - started)
    return agent


class BatchWatch:
    """The agents' batch metrics, and their lag per partition: its high watermark minus
    the next offset to work, refreshed after every batch and on a timer too, so a
    stalled agent shows its lag growing."""

    def __init__(self, app: faust.types.AppT) -> None:
        self.app = app
        self.worked: dict[faust.types.TP, int] = {}  # the last offset worked

    def batch(self, topic: str, batch: intake.Batch[Any], seconds: float) -> None:
        worker_metrics.BATCH_RECORDS.labels(topic=topic).observe(len(batch))
        worker_metrics.BATCH_SECONDS.labels(topic=topic).observe(seconds)
        for at, _ in batch:
            self.worked[faust.types.TP(topic, at.partition)] = at.offset
        self.lag()

    def lag(self) -> None:
        for tp, offset in list(self.worked.items()):
            highwater = self.app.consumer.highwater(tp)
            if highwater is not None:
                worker_metrics.LAG.labels(topic=tp.topic, partition=str(tp.partition)).set(
                    max(0, highwater - offset - 1))


def create_app(settings: StreamSettings, bootstrap: str,
               heap: LongLivedHeap | None = None,
               cluster: Cluster = SINGLE) -> faust.App:
    """The app; ``heap``, when given, settles after every batch (see ``streams.heap``)."""
    app = faust_app(settings, bootstrap, cluster)
    output = BrokerOutput(app, raw_topic(app, topics.RECOMPUTE, settings.partitions),
                          settings.partitions, bootstrap)
    view = PriceView(settings,
                     on_new_asset=lambda update: output.fan_out(Recompute(price=update)),
                     live=True)
    worker = RiskWorker(settings, MarginParams(version=settings.params_version),
                        TraderTable(app, settings.partitions), output, view, heap)
    app.on_partitions_revoked.connect(worker.states.forget)
    app.on_partitions_assigned.connect(worker.states.forget)
    worker_metrics.TRADERS.set_function(lambda: len(worker.states.states))

    async def refuse(event: faust.EventT, key: bytes | None, value: bytes | None,
                     offset: int, reason: str, kind: str) -> None:
        message = event.message
        bus_metrics.DEAD_LETTERS.labels(topic=message.topic, reason=kind).inc()
        letter = DeadLetter.refused(message.topic, key, value, reason, message.partition,
                                    offset)
        await raw_topic(app, topics.dead_letter(message.topic), settings.partitions).send(
            key=key, value=letter.to_bytes())

    halted = asyncio.Event()
    attach_agents(app, worker, settings, refuse, halted)

    @app.task
    async def follow_prices() -> None:
        await view.follow(bootstrap)

    @app.task
    async def watch_log() -> None:
        await epoch.watch(bootstrap, epoch_file(settings), False,
                          partial(halt_on_vanished_log, settings, halted),
                          asyncio.Event())

    return app


def epoch_file(settings: StreamSettings) -> epoch.EpochFile:
    return epoch.EpochFile(settings.data_dir / "log-epoch.json")


async def halt_on_vanished_log(settings: StreamSettings, halted: asyncio.Event,
                               vanished: epoch.LogVanished) -> None:
    """Stop working the log (``agent_over``) and say why (``epoch.record``: the
    incident in the data directory, the metric, a critical log line)."""
    halted.set()
    epoch.record(vanished, settings.data_dir, "worker")


async def declare_changelogs(app: faust.App, bootstrap: str) -> None:
    """Create the tables' changelog topics (compacted, as Faust would) before the worker
    joins its group, and wait until every broker knows them. Faust creates a changelog
    only as it starts, and on a Kafka cluster the group's first assignment could come
    from metadata that did not hold it yet: the assignor ignored the topic, and the
    table saw a changelog of no partitions on every write."""
    changelogs = [(t.changelog_topic.get_topic_name(),
                   t.partitions or app.conf.topic_partitions,
                   {"cleanup.policy": "compact"}) for t in app.tables.values()]
    await create_missing(bootstrap, changelogs)
    await wait_known(bootstrap, [name for name, _, _ in changelogs])


def run_worker(settings: StreamSettings, bootstrap: str, loglevel: str = "info") -> None:
    """Run one Faust worker until it is stopped (SIGINT / SIGTERM). Over a log that no
    longer holds the worker's epoch it does not start (Faust itself would crash on the
    missing changelog, and a supervisor restart it again and again): it records the
    incident, sets the metric and waits to be stopped."""
    try:
        asyncio.run(epoch.hold(bootstrap, epoch_file(settings), create=False))
    except epoch.LogVanished as e:
        # Both blocked before the wait: a signal arriving meanwhile is not lost.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        asyncio.run(halt_on_vanished_log(settings, asyncio.Event(), e))
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
        return
    except Exception as e:  # the broker does not answer yet: the running check retries
        log.warning("log epoch not checked at start: %r", e)
    heap = LongLivedHeap(settings.gc_full_collect_s)
    app = create_app(settings, bootstrap, heap, asyncio.run(describe(bootstrap)))
    asyncio.run(declare_changelogs(app, bootstrap))
    heap.start()
    worker = faust.Worker(app, loglevel=loglevel, redirect_stdouts=False)
    worker.execute_from_commandline()
