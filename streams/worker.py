"""The stream processor's batch logic: ``RiskWorker``, methods over the pure reducers.

The Faust agents (``streams.app``) hand it batches of (event, record); it keeps the
trader states of its partitions (``PartitionStates``), re-margins the traders a batch
touches in one engine call per set of markets, and sends the attestations (and a
liquidation plan for each that finds health < 1) through a ``RiskOutput`` before it
stores the states that name them in a ``StateTable``. Both are narrow: the Faust table
and producer in the worker, fakes in unit tests.

Order within a batch: attestations reach the broker, then the states (and so the
sequence numbers they name) are stored and reach the changelog, then the batch's events
are acknowledged; the other order could keep a sequence number whose attestation never
reached the log. A worker stopped in between leaves attestations newer than the stored
states: whoever holds the partition next reads the attestation topic's tail for it
(``recover_sequences``: the topic is keyed by trader, partitioned as the states) and
continues each trader after the newest attestation found there, from its figures, so a
sequence number is never issued twice for different books. Only an attestation still in
flight to the broker when its worker died can be missed; its sequence may then be
issued again (consumers and replay take a repeat as one).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from bus.partitioner import partition_of as key_partition
from engine import MarginParams
from streams import metrics
from streams.heap import LongLivedHeap
from streams.oracle import OraclePrice, Quotes, Window, apply_quote, implied_vols
from streams.partition_states import PartitionStates
from streams.price_view import PriceView
from streams.risk import (
    liquidation_for,
    margin_by_market_set,
    markets_of,
    next_attestation,
    oracle_prices,
)
from streams.settings import StreamSettings
from streams.state import (
    TraderState,
    apply_attestation,
    apply_plan,
    apply_proven,
    apply_reorg,
    plan_in_flight,
)
from wire.records import (
    Attestation,
    ChainReorg,
    Liquidation,
    PriceUpdate,
    ProvenBook,
    Recompute,
    RecordError,
    decode,
)

# Where a record was read (``streams.intake.At``): its partition, its offset, the event.
Origin = Any
Work = list[tuple[TraderState, Origin]]
# A trader's new attestation and, when it finds health < 1 and no plan is in flight, the
# liquidation plan sent with it.
Attested = tuple[TraderState, Attestation, Liquidation | None]


class StateTable(Protocol):
    """The trader table: key (trader address) → the state's JSON bytes."""

    def items(self) -> Iterable[tuple[bytes, bytes]]: ...

    def put(self, key: bytes, value: bytes, origin: Origin) -> None:
        """Store ``value`` in the partition (and changelog partition) of ``origin``."""
        ...

    async def flush(self) -> None:
        """Return once the broker has every write since the last flush."""
        ...


class RiskOutput(Protocol):
    async def send(self, attestations: list[tuple[bytes, bytes]],
                   liquidations: list[tuple[bytes, bytes]],
                   settlements: Sequence[tuple[bytes, bytes]] = ()) -> None:
        """Return once the broker has them all (key, value), sending again meanwhile."""
        ...

    async def fan_out(self, work: Recompute) -> None:
        """Send ``work`` to every trader partition."""
        ...

    async def recent_attestations(self, partitions: set[int], window: int | None
                                  ) -> list[bytes]:
        """The last ``window`` records (at most; ``None``: all) of each of ``partitions``
        of the attestation topic, as they are in the log now."""
        ...


def partition_of(origin: Origin) -> int:
    return int(origin.partition)


def trader_partition(trader: str, partitions: int) -> int:
    return key_partition(trader.encode(), partitions)


def record_time(origin: Origin) -> float | None:
    """The broker timestamp (unix seconds) of the record ``origin`` was read in."""
    event = origin.event
    return None if event is None else float(event.message.timestamp)


class RiskWorker:
    def __init__(self, settings: StreamSettings, params: MarginParams, table: StateTable,
                 output: RiskOutput, view: PriceView, heap: LongLivedHeap | None = None
                 ) -> None:
        self.settings = settings
        self.params = params
        self.table = table
        self.output = output
        self.view = view
        self.heap = heap
        self.states = PartitionStates(settings.partitions)
        # The proven-book and recompute agents touch the same traders. Each holds this
        # from reading a state to saving it and publishing its attestation, so neither
        # works from a state the other has replaced (a lost book, or one sequence twice).
        self.lock = asyncio.Lock()

    async def on_prices(self, batch: list[tuple[Origin, PriceUpdate]]) -> None:
        # Every trader partition re-margins its holders of these assets, whatever this
        # worker's view already holds (re-margining is idempotent). The updates ride
        # along: they may reach the other workers' views later.
        for _, update in batch:
            await self.output.fan_out(Recompute(price=update))

    async def on_vols(self, batch: list[tuple[Origin, PriceUpdate]]) -> None:
        # As prices: every trader partition re-margins the holders of these underlyings.
        for _, update in batch:
            await self.output.fan_out(Recompute(vol=update))

    async def on_reorgs(self, batch: list[tuple[Origin, ChainReorg]]) -> None:
        for _, reorg in batch:
            await self.output.fan_out(Recompute(reorg=reorg))

    async def on_proven(self, batch: list[tuple[Origin, ProvenBook]]) -> None:
        """Fold the books into their traders' states and re-margin those that changed."""
        await self.view.caught_up()
        async with self.lock:
            changed: dict[str, tuple[TraderState, Origin]] = {}
            # No table read per record: a lookup that misses (every new trader) cost
            # more than the book.
            await self.hold({partition_of(origin) for origin, _ in batch})
            for origin, book in batch:
                known = changed.get(book.trader)
                state = (known[0] if known else self.states.states.get(book.trader)
                         ) or TraderState(trader=book.trader)
                new = apply_proven(state, book, origin.offset)
                if new is not state:
                    changed[book.trader] = (new, origin)
            newest = max([0, *(book.block_timestamp for _, book in batch)])
            await self.remargin(list(changed.values()), set(changed), self.view.quotes,
                                self.view.windows, newest, self.view.vol_quotes)
            self.settle()

    async def on_recompute(self, batch: list[tuple[Origin, Recompute]]) -> None:
        """Re-margin each partition's holders of the repriced assets and retract the
        orphaned books, in one pass: price updates coalesce (the newest view holds them
        all), reorgs retract in order."""
        await self.view.caught_up()
        prices = [work.price for _, work in batch if work.price is not None]
        vols = [work.vol for _, work in batch if work.vol is not None]
        if prices or vols:
            await self.view.reach(prices, self.settings.price_view_wait_s, vols)
        async with self.lock:
            last = {partition_of(origin): origin for origin, _ in batch}
            await self.hold(set(last))
            quotes, recent, vol_quotes, assets, orphaned, as_of = self.fold(batch)
            for partition, origin in last.items():
                todo, retracted = self.touched(partition, origin, assets, orphaned)
                # The newest surviving block or price: deterministic, as replay needs.
                newest = max([as_of, *(b.block_timestamp for s, _ in todo
                                       for b in s.books.values())])
                await self.remargin(todo, retracted, quotes, recent, newest, vol_quotes)
            self.settle()

    def fold(self, batch: list[tuple[Origin, Recompute]]
             ) -> tuple[Quotes, dict[str, Window], Quotes, set[str], dict[int, set[str]], int]:
        """The view with the batch's prices and implied volatilities in, the assets
        repriced, the orphaned block hashes per chain, and the newest price time."""
        quotes, recent, vol_quotes = self.view.quotes, self.view.windows, self.view.vol_quotes
        assets: set[str] = set()
        orphaned: dict[int, set[str]] = {}
        as_of = 0
        for _, work in batch:
            if work.price is not None:
                quotes, recent = self.view.with_update(work.price, quotes, recent)
                assets.add(work.price.asset)
                as_of = max(as_of, work.price.observed_at)
            elif work.vol is not None:
                vol_quotes = apply_quote(vol_quotes, work.vol)
                assets.add(work.vol.asset)
            elif work.reorg is not None:
                orphaned.setdefault(work.reorg.chain_id, set()).update(work.reorg.orphaned)
        return quotes, recent, vol_quotes, assets, orphaned, as_of

    def touched(self, partition: int, origin: Origin, assets: set[str],
                orphaned: dict[int, set[str]]) -> tuple[Work, set[str]]:
        """The partition's states a reorg changed or a repricing concerns, and the
        traders whose books the reorg retracted."""
        todo: dict[str, tuple[TraderState, Origin]] = {}
        retracted: set[str] = set()
        for state in self.states.of_partition(partition):
            new = state
            for chain_id, hashes in sorted(orphaned.items()):
                new = apply_reorg(new, chain_id, frozenset(hashes))
            if new is not state:
                retracted.add(new.trader)
                todo[new.trader] = (new, origin)
            elif assets & set(state.markets):
                todo[state.trader] = (state, origin)
        return list(todo.values()), retracted

    async def remargin(self, work: Work, changed: set[str], quotes: Quotes,
                       recent: dict[str, Window], as_of: int,
                       vol_quotes: Quotes | None = None) -> None:
        """Re-margin the states in one engine call, attest those that moved, and store
        each state once: attested, or in ``changed`` (their books moved)."""
        margined = [(s, o) for s, o in work if s.books]
        markets = markets_of([s for s, _ in margined])
        market = oracle_prices(markets, quotes, as_of, self.settings, recent)
        implied = implied_vols(markets, vol_quotes or {}, as_of, self.settings.vol_staleness_s,
                               self.settings.max_vol_deviation)
        attested, saves = self.attest(margined, market, implied)
        causes = [origin for _, origin in saves]  # of each attestation, in order
        done = {state.trader for state, _, _ in attested}
        saves += [(state, origin) for state, origin in work
                  if state.trader in changed and state.trader not in done]
        await self.publish(attested)
        now = time.time()
        for origin in causes:
            stamp = record_time(origin)
            if stamp is not None:
                metrics.RECORD_TO_ATTESTATION.observe(max(0.0, now - stamp))
        for state, origin in saves:
            self.save(state, origin)
        await self.table.flush()

    def attest(self, margined: Work, market: Mapping[str, OraclePrice],
               implied: Mapping[str, OraclePrice] | None = None
               ) -> tuple[list[Attested], Work]:
        """The attestations of the states whose figures moved (with a liquidation plan
        for each that finds health < 1, unless the last plan is still being executed),
        and the states to store (first those attested, in the attestations' order)."""
        margins = margin_by_market_set([s for s, _ in margined], market, self.params,
                                       self.settings.implied_vol, self.view.days,
                                       implied=implied)
        attested: list[Attested] = []
        saves: Work = []
        for (state, origin), margin in zip(margined, margins, strict=True):
            if margin is None:
                continue
            result, row, basis = margin
            attestation = next_attestation(state, result, row, self.settings, market, basis,
                                           implied)
            if attestation is None:
                metrics.SUPPRESSED.inc()
                continue
            new, plan = apply_attestation(state, attestation), None
            if attestation.health < 1.0:
                if plan_in_flight(state, attestation.issued_at):
                    metrics.PLANS_HELD.inc()
                else:
                    plan = liquidation_for(state, attestation, market, self.params,
                                           self.settings.implied_vol, basis, implied)
                    new = apply_plan(new, plan, attestation.valid_until)
            saves.append((new, origin))
            attested.append((state, attestation, plan))
        metrics.ATTESTATIONS.inc(len(attested))
        return attested, saves

    async def publish(self, attested: list[Attested]) -> None:
        """Send the attestations, the liquidation plans and the settlement orders."""
        records, orders, settlements = [], [], []
        for state, attestation, plan in attested:
            key = state.trader.encode()
            records.append((key, attestation.to_bytes()))
            if plan is not None:
                orders.append((key, plan.to_bytes()))
            settlements += [(key, o.to_bytes()) for o in attestation.settlements]
        await self.output.send(records, orders, settlements)
        metrics.LIQUIDATION_PLANS.inc(len(orders))

    async def hold(self, partitions: set[int]) -> None:
        """Hold every state of ``partitions`` (those of the current events: a table's
        changelog is written to the current event's partition), with the sequences of
        the attestations that reached the log after them."""
        unread = partitions - self.states.complete
        if unread:
            self.states.read(unread, list(self.table.items()))
            # A partition whose table holds nothing (a new worker, or one rebuilding over
            # a restored log) reads its whole attestation history: none of its traders
            # may start again at sequence 1.
            empty = {p for p in unread if not self.states.members.get(p)}
            if empty:
                await self.recover_sequences(empty, whole=True)
            if unread - empty:
                await self.recover_sequences(unread - empty)

    async def recover_sequences(self, partitions: set[int], whole: bool = False) -> None:
        """Continue each trader of ``partitions`` after its newest attestation in the
        log's tail, where that is newer than its stored state (a worker stopped between
        sending a batch's attestations and storing its states). A batch's attestations
        come just before its states are stored, so two batches' worth is enough tail
        (``whole``: the whole history)."""
        window = None if whole else 2 * self.settings.batch_max_records
        for raw in await self.output.recent_attestations(partitions, window):
            try:
                attestation = decode(Attestation, raw)
            except RecordError:
                continue
            partition = trader_partition(attestation.trader, self.settings.partitions)
            if partition not in partitions:
                continue
            state = self.states.states.get(attestation.trader) or TraderState(
                trader=attestation.trader)
            if attestation.sequence > state.sequence:
                self.states.keep(apply_attestation(state, attestation), partition)
                metrics.SEQUENCES_RECOVERED.inc()

    def save(self, state: TraderState, origin: Origin) -> None:
        self.table.put(state.trader.encode(), state.to_bytes(), origin)
        self.states.keep(state, partition_of(origin))

    def settle(self) -> None:
        if self.heap is not None:
            self.heap.settle()
