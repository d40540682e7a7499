"""Each worker's view of the prices: the price topic folded with the pure reducers.

Faust's GlobalTable is not used: with several workers it stops updating on some of
them and can hang rebalances (faust-streaming issue #283), and every worker needs
every price. Instead each worker reads ``oracle.price.v1`` from offset 0 on all
partitions outside the consumer group and folds it with ``apply_quote`` and
``apply_window``, which are idempotent, so overlapping with the agents is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition

from bus import tansu
from bus.admin import topic_partitions
from bus.consumer import log_reader, reached
from streams.market_days import MarketDays
from streams.oracle import Quotes, Window, aggregate, apply_quote, apply_window
from streams.settings import StreamSettings
from wire import topics
from wire.records import PriceUpdate, RecordError, decode

log = logging.getLogger(__name__)


class PriceView:
    def __init__(self, settings: StreamSettings,
                 on_new_asset: Callable[[PriceUpdate], Awaitable[None]] | None = None,
                 live: bool = False) -> None:
        self.settings = settings
        self.quotes: Quotes = {}
        self.windows: dict[str, Window] = {}
        self.vol_quotes: Quotes = {}  # implied volatility rounds (oracle.vol.v1)
        # Daily closes in the order this view folds the log: only records folded here
        # close a day (never one applied ahead by ``with_update``).
        self.days = MarketDays(settings.price_staleness_s, settings.max_price_deviation)
        # A book proven before this worker knew any price of its asset waits unmargined;
        # the first price seen for an asset therefore re-margins every partition.
        self.on_new_asset = on_new_asset
        # A live view (one that ``follow``s the log) makes the agents wait until it has
        # caught up with the price topic (``caught_up``): a worker that restarts margins
        # with the prices and days the log holds, not the few it has read so far.
        self.live = live
        self.following = False
        self.folded = asyncio.Event()  # set after each fetch folded in ``follow``
        self.ready = asyncio.Event()  # set once the log's end at the start is folded

    def apply(self, update: PriceUpdate) -> None:
        quotes, windows = self.with_update(update)
        if quotes is self.quotes:
            return
        self.days.apply(self.quotes, update)
        self.quotes, self.windows = quotes, windows

    def apply_vol(self, update: PriceUpdate) -> None:
        self.vol_quotes = apply_quote(self.vol_quotes, update)

    def holds(self, update: PriceUpdate, vol: bool = False) -> bool:
        """Has this view folded ``update`` (or a newer round of its source)?"""
        held = (self.vol_quotes if vol else self.quotes).get(update.asset, {}).get(update.source)
        return held is not None and (held.observed_at, held.round_id) >= (
            update.observed_at, update.round_id)

    async def caught_up(self) -> None:
        """Return once a live view has folded the price topic up to where it ended when
        the view started following (at once for a view that is not live)."""
        if self.live and not self.ready.is_set():
            log.info("waiting for the price view to catch up with the log")
            await self.ready.wait()

    async def reach(self, updates: Sequence[PriceUpdate], timeout_s: float,
                    vols: Sequence[PriceUpdate] = ()) -> bool:
        """Wait (at most ``timeout_s``) until a following view holds every one of
        ``updates``, so that a re-margin on them uses the days they close; ``False`` if
        it does not (or the view is not following the log)."""
        if not self.following:
            return False
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not (all(self.holds(u) for u in updates)
                   and all(self.holds(v, vol=True) for v in vols)):
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return False
            self.folded.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.folded.wait(), remaining)
        return True

    def with_update(self, update: PriceUpdate, quotes: Quotes | None = None,
                    windows: dict[str, Window] | None = None) -> tuple[Quotes, dict[str, Window]]:
        """The view (or ``quotes`` and ``windows``) once ``update`` is in: it may not have
        arrived here yet. The same ``quotes`` when it changes nothing."""
        quotes = self.quotes if quotes is None else quotes
        windows = self.windows if windows is None else windows
        folded = apply_quote(quotes, update)
        if folded is quotes:
            return quotes, windows
        median = aggregate(update.asset, folded[update.asset], update.observed_at,
                           self.settings.price_staleness_s, self.settings.max_price_deviation)
        return folded, {**windows, update.asset: apply_window(
            windows.get(update.asset, ()), update.observed_at, median.price_wad,
            self.settings.circuit_breaker_window_s)}

    async def follow(self, bootstrap: str) -> None:
        """Fold every price and implied volatility record, from the beginning, until
        cancelled."""
        consumer = log_reader(bootstrap)
        await consumer.start()
        try:
            partitions = await price_partitions(bootstrap)
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            self.following = True
            # Where the log ended when following began (a fetch's end on Tansu, whose
            # ListOffsets counts batches): caught up once every position reaches it.
            ends = await tansu.fetched_end_offsets(bootstrap,
                                                   await consumer.end_offsets(partitions))
            while True:
                self.folded.set()
                if not self.ready.is_set():
                    await self.mark_ready(consumer, ends)
                for messages in (await consumer.getmany(timeout_ms=500)).values():
                    for message in messages:
                        try:
                            update = decode(PriceUpdate, message.value)
                        except RecordError:
                            continue  # dead-lettered by the price (or vol) agent
                        if message.topic == topics.VOL:
                            self.apply_vol(update)
                            continue
                        new_asset = update.asset not in self.quotes
                        self.apply(update)
                        if new_asset and self.on_new_asset is not None:
                            await self.on_new_asset(update)
        except asyncio.CancelledError:
            raise
        finally:
            self.following = False
            await consumer.stop()


    async def mark_ready(self, consumer: AIOKafkaConsumer,
                         ends: dict[TopicPartition, int | None]) -> None:
        """Set ``ready`` once every partition's position has reached ``ends``."""
        if await reached(consumer, ends):
            self.ready.set()


async def price_partitions(bootstrap: str) -> list[TopicPartition]:
    """The partitions of the price and implied volatility topics, once the broker has
    them (a worker may start before the node created its topics)."""
    while True:
        found = await topic_partitions(bootstrap, [topics.PRICE, topics.VOL])
        if found.get(topics.PRICE) and found.get(topics.VOL):
            return [TopicPartition(t, p) for t in (topics.PRICE, topics.VOL) for p in found[t]]
        log.info("waiting for the price and vol topics' partitions")
        await asyncio.sleep(0.5)
