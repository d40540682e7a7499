"""The Faust app: thin agents over the pure reducers in ``state`` and ``risk``.

Topics are keyed by trader (books, attestations) and by asset (prices). The trader
table is keyed like its stream (co-partitioned); every worker folds the whole price
topic into its own view (``price_view``) because every trader's margin needs every
price.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, cast

import faust
from faust.streams import _current_event

from engine import MarginParams
from streams import bundles, table, tansu, topics
from streams.heap import LongLivedHeap
from streams.oracle import OraclePrice, Quotes, Window
from streams.price_view import PriceView
from streams.records import (
    Attestation,
    ChainReorg,
    DeadLetter,
    PriceUpdate,
    ProvenBook,
    R,
    Recompute,
    RecordError,
    decode,
)
from streams.risk import (
    liquidation_for,
    margins_for,
    markets_of,
    next_attestation,
    oracle_prices,
)
from streams.settings import StreamSettings
from streams.state import (
    TraderState,
    apply_attestation,
    apply_proven,
    apply_reorg,
)


def create_app(settings: StreamSettings, bootstrap: str,
               heap: LongLivedHeap | None = None) -> faust.App:
    """The app; ``heap``, when given, settles after every batch (see ``streams.heap``)."""
    tansu.register()
    table.register()
    app = faust.App(
        settings.app_id,
        broker=f"{tansu.SCHEME}://{bootstrap}",
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
        # The agents get bundles (streams.bundles) of up to a fetch's worth of a
        # partition: ~1,000 proven books at 4 MB. Flow control counts bundles, so few
        # are buffered per stream (Faust's default of 4,096 would be millions of records).
        consumer_max_fetch_size=4 << 20,
        stream_buffer_maxsize=16,
    )
    params = MarginParams(version=settings.params_version)

    def raw_topic(name: str) -> faust.TopicT:
        return app.topic(name, key_serializer="raw", value_serializer="raw",
                         partitions=settings.partitions)

    proven_topic = raw_topic(topics.POSITION_PROVEN)
    price_topic = raw_topic(topics.PRICE)
    recompute_topic = raw_topic(topics.RECOMPUTE)
    reorg_topic = raw_topic(topics.REORG)

    async def publish(attested: list[tuple[TraderState, Attestation]],
                      market: Mapping[str, OraclePrice]) -> None:
        """Send the attestations, and a liquidation plan for each that finds health < 1,
        and wait until the broker has them all, sending them again while it refuses
        (``tansu.deliver``). The producer directly, in record batches: Faust's
        Topic.send machinery, or even one producer call per record, costs more than the
        record."""
        records, orders = [], []
        for state, attestation in attested:
            key = state.trader.encode()
            records.append((key, attestation.to_bytes()))
            if attestation.health < 1.0:
                order = liquidation_for(state, attestation, market, params,
                                        settings.implied_vol)
                orders.append((key, order.to_bytes()))
        producer = cast(tansu.Producer, app.producer)

        async def send() -> list[asyncio.Future[Any]]:
            sent = await producer.send_keyed(topics.ATTESTATION, records)
            if orders:
                sent += await producer.send_keyed(topics.LIQUIDATION, orders)
            return sent

        await tansu.deliver(send, f"{len(records)} attestation(s), {len(orders)} "
                                  f"liquidation plan(s)")

    # Keys are the trader's address, values its state's JSON bytes, both raw: pydantic,
    # not Faust, owns the schema. ``held`` keeps them decoded beside the table.
    traders = cast(table.BatchedChangelogTable, app.tables.add(table.BatchedChangelogTable(
        app, name="traders", beacon=app.tables.beacon, partitions=settings.partitions,
        key_type=bytes, value_type=bytes, store=table.store_url("traders"))))
    held = HeldStates()
    app.on_partitions_revoked.connect(held.forget)
    app.on_partitions_assigned.connect(held.forget)
    # The proven-book and recompute agents touch the same traders. Each holds this from
    # reading a state to saving it and publishing its attestation, so neither works from
    # a state the other has replaced (a lost book, or one sequence number twice).
    state_lock = asyncio.Lock()
    view = PriceView(settings, on_new_asset=lambda update: fan_out(Recompute(price=update)))

    def save(state: TraderState, event: faust.EventT) -> None:
        # Faust stores a key, and writes its changelog, in the partition of the current
        # event; a batch spans partitions, so each write names the event it comes from.
        acting_for(event)
        traders[state.trader.encode()] = state.to_bytes()
        held.keep(state, event.message.partition)

    @app.task
    async def follow_prices() -> None:
        await view.follow(bootstrap)

    async def refuse(event: faust.EventT, key: bytes | None, value: bytes | None,
                     offset: int, reason: str) -> None:
        message = event.message
        letter = DeadLetter.refused(message.topic, key, value, reason, message.partition,
                                    offset)
        await raw_topic(topics.dead_letter(message.topic)).send(key=key,
                                                                value=letter.to_bytes())

    async def batches(stream: faust.StreamT, model: type[R]
                      ) -> AsyncIterator[list[tuple[faust.EventT, R]]]:
        """The stream in batches of (event, record), a bundle's records sharing its event;
        invalid records are dead-lettered."""
        # take_events is on faust.Stream, not on the StreamT protocol.
        take = cast(faust.Stream[bytes], stream).take_events
        async for events in take(settings.batch_max_records, within=settings.batch_window_s):
            batch = []
            for event in events:
                message = event.message
                entries: Sequence[bundles.Entry]
                if not bundles.is_bundle(message.headers):
                    entries = [bundles.Entry(message.offset, 0, message.key, message.value)]
                else:
                    try:
                        entries = bundles.entries_of(message.value or b"")
                    except bundles.BundleError as e:
                        await refuse(event, message.key, message.value, message.offset, str(e))
                        continue
                for entry in entries:
                    try:
                        batch.append((event, decode(model, entry.value)))
                    except RecordError as e:
                        await refuse(event, entry.key, entry.value, entry.offset, e.reason)
            yield batch

    @app.agent(price_topic)
    async def on_price(stream: faust.StreamT) -> None:
        async for batch in batches(stream, PriceUpdate):
            # Every trader partition re-margins its holders of these assets, whatever this
            # worker's view already holds (re-margining is idempotent). The updates ride
            # along: they may reach the other workers' views later.
            for _, update in batch:
                await fan_out(Recompute(price=update))

    @app.agent(reorg_topic)
    async def on_reorg(stream: faust.StreamT) -> None:
        async for batch in batches(stream, ChainReorg):
            for _, reorg in batch:
                await fan_out(Recompute(reorg=reorg))

    async def fan_out(work: Recompute) -> None:
        # Every trader partition re-margins the traders it concerns.
        for partition in range(settings.partitions):
            await recompute_topic.send(value=work.to_bytes(), partition=partition)

    def hold(partitions: set[int]) -> None:
        """Hold every state of ``partitions`` (those of the current events: Faust writes a
        table's changelog to the current event's partition). A partition's table is read
        once after it is assigned; then the held states are the whole partition, as every
        write since went through ``save``, and a trader not held is a new one."""
        unread = partitions - held.complete
        if unread:
            for key, raw in list(traders.items()):
                partition = topics.partition_of(key, settings.partitions)
                if partition in unread and key.decode() not in held.states:
                    held.keep(TraderState.model_validate_json(raw), partition)
            held.complete |= unread

    @app.agent(recompute_topic)
    async def on_recompute(stream: faust.StreamT) -> None:
        async for batch in batches(stream, Recompute):
            async with state_lock:
                await recompute(batch)
                if heap is not None:
                    heap.settle()

    async def recompute(batch: list[tuple[faust.EventT, Recompute]]) -> None:
        # All the work of one batch for one partition is done in one pass: price
        # updates coalesce (the newest view holds them all), reorgs retract in order.
        last_event = {event.message.partition: event for event, _ in batch}
        hold(set(last_event))
        quotes, recent = view.quotes, view.windows
        assets: set[str] = set()
        orphaned: dict[int, set[str]] = {}
        as_of = 0
        for _, work in batch:
            if work.price is not None:
                quotes, recent = view.with_update(work.price, quotes, recent)
                assets.add(work.price.asset)
                as_of = max(as_of, work.price.observed_at)
            elif work.reorg is not None:
                orphaned.setdefault(work.reorg.chain_id, set()).update(work.reorg.orphaned)
        for partition, event in last_event.items():
            todo: dict[str, tuple[TraderState, faust.EventT]] = {}
            retracted: set[str] = set()
            for state in held.of_partition(partition):
                new = state
                for chain_id, hashes in sorted(orphaned.items()):
                    new = apply_reorg(new, chain_id, frozenset(hashes))
                if new is not state:
                    retracted.add(new.trader)
                    todo[new.trader] = (new, event)
                elif assets & set(state.markets):
                    todo[state.trader] = (state, event)
            # The newest surviving block or price: deterministic, as replay needs.
            newest = max([as_of, *(b.block_timestamp for s, _ in todo.values()
                                   for b in s.books.values())])
            await remargin(list(todo.values()), retracted, quotes, recent, newest)

    async def remargin(work: list[tuple[TraderState, faust.EventT]],
                       changed: set[str], quotes: Quotes, recent: dict[str, Window],
                       as_of: int) -> None:
        """Re-margin the states in one engine call, attest those that moved, and store
        each state once: attested, or in ``changed`` (their books moved)."""
        margined = [(s, e) for s, e in work if s.books]
        states = [s for s, _ in margined]
        assets = markets_of(states)
        market = oracle_prices(assets, quotes, as_of, settings, recent)
        margins = margins_for(states, market, params, settings.implied_vol)
        attested: list[tuple[TraderState, Attestation]] = []
        saves: list[tuple[TraderState, faust.EventT]] = []
        for (state, event), margin in zip(margined, margins, strict=True):
            if margin is None:
                continue
            attestation = next_attestation(state, margin[0], margin[1], settings, market)
            if attestation is not None:
                saves.append((apply_attestation(state, attestation), event))
                attested.append((state, attestation))
        done = {state.trader for state, _ in attested}
        saves += [(state, event) for state, event in work
                  if state.trader in changed and state.trader not in done]
        # The states, and so the sequence numbers they name, are stored (table,
        # changelog, held) only once the broker has the attestations; until then the
        # batch's events are not acknowledged. A worker stopped in between works the
        # batch again and emits the same sequence numbers (consumers and replay take a
        # repeat as one); the other order could keep a sequence number whose
        # attestation never reached the log.
        await publish(attested, market)
        for state, event in saves:
            save(state, event)
        await traders.flush_changelog()

    @app.agent(proven_topic)
    async def on_proven(stream: faust.StreamT) -> None:
        async for batch in batches(stream, ProvenBook):
            async with state_lock:
                await prove(batch)
                if heap is not None:
                    heap.settle()

    async def prove(batch: list[tuple[faust.EventT, ProvenBook]]) -> None:
        changed: dict[str, tuple[TraderState, faust.EventT]] = {}
        # No table read per record: a lookup that misses (every new trader) cost more
        # than the book (benchmarks/bench_streams.py).
        hold({event.message.partition for event, _ in batch})
        for event, book in batch:
            known = changed.get(book.trader)
            state = (known[0] if known else held.states.get(book.trader)
                     ) or TraderState(trader=book.trader)
            new = apply_proven(state, book)
            if new is not state:
                changed[book.trader] = (new, event)
        newest = max([0, *(book.block_timestamp for _, book in batch)])
        await remargin(list(changed.values()), set(changed), view.quotes, view.windows,
                       newest)

    return app


class HeldStates:
    """The trader states of this worker's partitions, decoded, beside the table.

    Nobody else writes a partition while it is assigned here, so a state read or written
    since the last rebalance is the table's; a rebalance forgets them all (a partition
    may have moved). ``complete``: partitions whose whole table has been read."""

    def __init__(self) -> None:
        self.states: dict[str, TraderState] = {}
        self.members: dict[int, set[str]] = {}
        self.complete: set[int] = set()

    def keep(self, state: TraderState, partition: int) -> None:
        self.states[state.trader] = state
        self.members.setdefault(partition, set()).add(state.trader)

    def of_partition(self, partition: int) -> list[TraderState]:
        return [self.states[t] for t in self.members.get(partition, ())]

    def forget(self, sender: Any, /, *args: Any, **kwargs: Any) -> None:
        self.states.clear()
        self.members.clear()
        self.complete.clear()


def acting_for(event: faust.EventT) -> None:
    """Make ``event`` Faust's current event (the one whose partition a table uses)."""
    _current_event.set(weakref.ref(event))


def run_worker(settings: StreamSettings, bootstrap: str, loglevel: str = "info") -> None:
    """Run one Faust worker until it is stopped (SIGINT / SIGTERM)."""
    heap = LongLivedHeap(settings.gc_full_collect_s)
    app = create_app(settings, bootstrap, heap)
    heap.start()
    worker = faust.Worker(app, loglevel=loglevel, redirect_stdouts=False)
    worker.execute_from_commandline()
