"""The Faust app: thin agents over the pure reducers in ``state`` and ``risk``.

Topics are keyed by trader (books, attestations) and by asset (prices). The trader
table is keyed like its stream (co-partitioned); every worker folds the whole price
topic into its own view (``price_view``) because every trader's margin needs every
price.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import faust

from engine import MarginParams
from streams import tansu, topics
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
from streams.risk import liquidation_for, margin_for, markets_of, next_attestation, oracle_prices
from streams.settings import StreamSettings
from streams.state import TraderState, apply_attestation, apply_proven, apply_reorg


def create_app(settings: StreamSettings, bootstrap: str) -> faust.App:
    tansu.register()
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
    )
    params = MarginParams(version=settings.params_version)

    def raw_topic(name: str) -> faust.TopicT:
        return app.topic(name, key_serializer="raw", value_serializer="raw",
                         partitions=settings.partitions)

    proven_topic = raw_topic(topics.POSITION_PROVEN)
    price_topic = raw_topic(topics.PRICE)
    attestation_topic = raw_topic(topics.ATTESTATION)
    recompute_topic = raw_topic(topics.RECOMPUTE)
    reorg_topic = raw_topic(topics.REORG)
    liquidation_topic = raw_topic(topics.LIQUIDATION)

    async def publish(state: TraderState, attestation: Attestation,
                      market: Mapping[str, OraclePrice]) -> None:
        """Send an attestation, and the liquidation plan when it finds health < 1."""
        key = state.trader.encode()
        await attestation_topic.send(key=key, value=attestation.to_bytes())
        if attestation.health < 1.0:
            order = liquidation_for(state, attestation, market, params)
            await liquidation_topic.send(key=key, value=order.to_bytes())
    # Keys are str, values the records' JSON objects (Faust's json codec): pydantic,
    # not Faust, owns the schema and validates on the way back in.
    traders = app.Table("traders", partitions=settings.partitions)
    view = PriceView(settings, on_new_asset=lambda update: fan_out(Recompute(price=update)))

    @app.task
    async def follow_prices() -> None:
        await view.follow(bootstrap)

    async def refuse(event: faust.EventT, error: RecordError) -> None:
        message = event.message
        letter = DeadLetter.refused(message.topic, message.key, message.value, error.reason,
                                    message.partition, message.offset)
        await raw_topic(topics.dead_letter(message.topic)).send(
            key=message.key, value=letter.to_bytes()
        )

    async def valid(stream: faust.StreamT, model: type[R]) -> AsyncIterator[R]:
        """The stream's records that validate as ``model``; the rest are dead-lettered."""
        async for event in stream.events():
            try:
                yield decode(model, event.value)
            except RecordError as e:
                await refuse(event, e)

    @app.agent(price_topic)
    async def on_price(stream: faust.StreamT) -> None:
        async for update in valid(stream, PriceUpdate):
            # Every trader partition re-margins its holders of this asset, whatever this
            # worker's view already holds (re-margining is idempotent). The update rides
            # along: it may reach the other workers' views later.
            await fan_out(Recompute(price=update))

    @app.agent(reorg_topic)
    async def on_reorg(stream: faust.StreamT) -> None:
        async for reorg in valid(stream, ChainReorg):
            await fan_out(Recompute(reorg=reorg))

    async def fan_out(work: Recompute) -> None:
        # Every trader partition re-margins the traders it concerns.
        for partition in range(settings.partitions):
            await recompute_topic.send(value=work.to_bytes(), partition=partition)

    def local_states(partition: int) -> list[TraderState]:
        # Only keys of this event's partition: Faust writes a table's changelog to the
        # partition of the event being processed.
        return [TraderState.model_validate(value) for key, value in list(traders.items())
                if topics.partition_of(key.encode(), settings.partitions) == partition]

    @app.agent(recompute_topic)
    async def on_recompute(stream: faust.StreamT) -> None:
        async for event in stream.events():
            try:
                work = decode(Recompute, event.value)
            except RecordError as e:
                await refuse(event, e)
                continue
            states = local_states(event.message.partition)
            if work.price is not None:
                update = work.price
                states = [s for s in states if update.asset in markets_of([s])]
                quotes, recent = view.with_update(update)
                as_of = update.observed_at
            elif work.reorg is not None:
                orphaned = frozenset(work.reorg.orphaned)
                retracted = [apply_reorg(s, work.reorg.chain_id, orphaned) for s in states]
                states = [new for new, old in zip(retracted, states, strict=True)
                          if new is not old]
                for state in states:
                    traders[state.trader] = state.model_dump(mode="json")
                quotes, recent = view.quotes, view.windows
                # The newest surviving block: deterministic, as replay needs.
                as_of = max([0, *(b.block_timestamp for s in states for b in s.books.values())])
            else:
                continue
            await remargin(states, quotes, recent, as_of)

    async def remargin(states: list[TraderState], quotes: Quotes, recent: dict[str, Window],
                       as_of: int) -> None:
        """Re-margin ``states`` in one engine call and attest those that moved."""
        states = [s for s in states if s.books]
        assets = markets_of(states)
        market = oracle_prices(assets, quotes, as_of, settings, recent) if states else None
        result = margin_for(states, market, params) if market is not None else None
        if result is None or market is None:
            return
        for row, state in enumerate(states):
            attestation = next_attestation(state, result, row, settings, market)
            if attestation is not None:
                traders[state.trader] = apply_attestation(state, attestation).model_dump(
                    mode="json")
                await publish(state, attestation, market)

    @app.agent(proven_topic)
    async def on_proven(stream: faust.StreamT) -> None:
        async for book in valid(stream, ProvenBook):
            key = book.trader
            held = traders.get(key)
            state = (TraderState.model_validate(held) if held
                     else TraderState(trader=book.trader))
            new = apply_proven(state, book)
            if new is state:
                continue
            traders[key] = new.model_dump(mode="json")
            await remargin([new], view.quotes, view.windows, book.block_timestamp)

    return app


def run_worker(settings: StreamSettings, bootstrap: str, loglevel: str = "info") -> None:
    """Run one Faust worker until it is stopped (SIGINT / SIGTERM)."""
    app = create_app(settings, bootstrap)
    worker = faust.Worker(app, loglevel=loglevel, redirect_stdouts=False)
    worker.execute_from_commandline()
