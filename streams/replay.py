"""Audit replay: re-derive every attestation in the log from the log alone.

An auditor feeds the records of ``chain.block_header.v1``, ``venue.position_proven.v1``
and ``risk.attestation.v1`` in log order. Headers are re-hashed from their RLP; every
proven book's account and storage proofs are verified again against its block's state
root, and its positions and collateral are hashed again to that commitment; and every
attestation is recomputed with the same reducers and engine from the
books and prices it names (``book_events``, ``prices``). A match means the recomputed
record, and so each chain's EIP-712 digest, is byte for byte the one emitted.

``audit`` spreads the work over processes by trader: each takes the books and
attestations keyed by its share of the traders (both topics are keyed by trader), and
every one reads all headers for their state roots.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine import MarginParams
from proofs import ProofError, header_from_rlp, verify_account, verify_storage
from proofs.account import Account
from proofs.mpt import NodeCache
from streams.audit_report import AuditReport, LogRecord, TraderAudit, merge
from streams.heap import LongLivedHeap
from streams.oracle import OraclePrice
from streams.price_view import PriceView
from streams.provenance import Anchor, Headers, Reorgs, Rounds
from streams.risk import margin_by_market_set, next_attestation
from streams.settings import StreamSettings
from streams.state import Attested, TraderState, book_order
from wire import topics
from wire.commitment import book_commitment
from wire.hexstr import from_hex, to_hex
from wire.records import (
    Attestation,
    AttestedPrice,
    BlockHeaderRecord,
    BookHead,
    ChainReorg,
    PriceUpdate,
    ProvenBook,
    RecordError,
    decode,
)

# Attestations recomputed per engine call, and proof nodes remembered (by content).
BATCH = 512
CACHED_NODES = 200_000
PROGRESS_EVERY = 2_000  # records read between two progress reports
STALE_RISK_DAYS = 1


@dataclass(frozen=True)
class BookSeen:
    """What the audit keeps of a verified book besides its head: where it was read, and
    the block and root its proofs were verified against."""

    event_id: str
    offset: int
    trader: str
    key: str
    order: tuple[int, int]
    chain_id: int
    block_hash: str
    block_number: int
    state_root: str


class Auditor:
    """Feed records in log order (``feed``), then ``finish``; or ``feed_all``.

    Attestations are recomputed in batches (at most one per trader, so each batch sees
    the previous attestation it follows): the engine gives a trader the same bits alone
    or in a batch over the same markets, so batching changes nothing but the speed.
    ``finality`` is each chain's finality depth (its ``finality_blocks``): a block is
    final once the log holds a header that many blocks below it.
    """

    def __init__(self, settings: StreamSettings, params: MarginParams,
                 share: tuple[int, int] = (0, 1),
                 finality: Mapping[int, int] | None = None) -> None:
        self.settings = settings
        self.params = params
        # (index, count): this auditor takes the traders whose key hashes to ``index``.
        self.share = share
        self.report = AuditReport()
        self.headers = Headers(finality or {})
        self.reorgs = Reorgs()
        self.rounds = Rounds(settings.max_price_deviation)
        self.vol_rounds = Rounds(settings.max_vol_deviation, "implied vol", topics.VOL)
        # The daily closes, folded by a worker's own price view: the ranges and
        # correlations an attestation names are derived again from these.
        self.prices = PriceView(settings)
        # Attestations whose risk day the log has not closed yet (its closing records
        # may come later in the feed than the attestation): recomputed at the end.
        self.later: list[tuple[Attestation, Attestation | None]] = []
        self.books: dict[str, BookHead] = {}  # verified, kept without their proofs
        self.seen: dict[str, BookSeen] = {}
        self.by_trader: dict[str, dict[str, list[BookSeen]]] = {}
        # Per trader: the attestation before the last one, and the last one.
        self.previous: dict[str, tuple[Attestation | None, Attestation]] = {}
        self.pending: dict[str, tuple[Attestation, Attestation | None]] = {}
        self.named: dict[str, tuple[str, int]] = {}  # book → first (trader, sequence)
        self.quoted: dict[tuple[str, str, int], PriceUpdate] = {}  # rounds attested
        self.priced: dict[tuple[str, AttestedPrice], tuple[list[str], list[PriceUpdate]]] = {}
        self.nodes = NodeCache()
        self.heap = LongLivedHeap()  # the books verified so far live on (streams.heap)
        self.accounts: dict[tuple[str, str, tuple[str, ...]], Account] = {}

    def feed_all(self, records: Iterable[LogRecord],
                 progress: Callable[[int], None] | None = None) -> AuditReport:
        """``progress`` is told every ``PROGRESS_EVERY`` records that many more were read."""
        for i, record in enumerate(records, 1):
            self.feed(record)
            if i % PROGRESS_EVERY == 0:
                self.heap.settle()
                if progress is not None:
                    progress(PROGRESS_EVERY)
        return self.finish()

    def finish(self) -> AuditReport:
        """Recompute what is still pending and hold every book and attested round
        against the whole log's headers and reorgs; the report is complete after this."""
        self.flush()
        self.pending, self.later = {a.trader: (a, p) for a, p in self.later}, []
        self.flush(final=True)
        for event_id, seen in self.seen.items():
            found = self.headers.check_block(f"book {event_id}", seen.chain_id,
                                             seen.block_hash, seen.block_number,
                                             seen.state_root)
            if self.reorgs.orphans(seen.chain_id, seen.block_hash) and event_id in self.named:
                found.append(f"book {event_id}: named by sequence {self.named[event_id][1]} "
                             f"but its block is orphaned by a chain.reorg.v1")
            self.trader(seen.trader).differences.extend(found)
        for (asset, source, round_id), q in sorted(self.quoted.items()):
            self.report.problems.extend(self.headers.check_block(
                f"oracle round {asset} {source}#{round_id}", q.chain_id, q.block_hash,
                q.block_number))
        return self.report

    def feed(self, record: LogRecord) -> None:
        index, count = self.share
        shared = SHARED.get(record.topic)
        if record.topic in BY_TRADER:
            if share_of(record.key, count) != index:
                return
        elif shared is not None and index != 0:
            # Every share needs the headers, rounds and reorgs; share 0 reports on them.
            with contextlib.suppress(RecordError):
                shared(self, record, True)
            return
        self.report.records += 1
        try:
            if shared is not None:
                shared(self, record, False)
            elif record.topic == topics.POSITION_PROVEN:
                self.book(record.value, record.offset)
            elif record.topic == topics.ATTESTATION:
                self.attestation(record.value)
        except RecordError:
            self.report.refused += 1  # refused by the live consumers too (dead-lettered)

    def keyed_elsewhere(self, trader: str) -> bool:
        """A record keyed by another trader than its own went to the wrong share (and,
        live, to the wrong partition): reported, not audited here."""
        index, count = self.share
        if count > 1 and share_of(trader.encode(), count) != index:
            self.report.problems.append(f"a record of {trader} is keyed by another trader")
            return True
        return False

    def trader(self, address: str) -> TraderAudit:
        return self.report.traders.setdefault(address, TraderAudit(address))

    def header(self, record: LogRecord, quiet: bool = False) -> None:
        """Anchor the header's block if its RLP hashes to its hash; ``quiet``: without
        reporting on it (another share does)."""
        h = decode(BlockHeaderRecord, record.value)
        try:
            rebuilt = header_from_rlp(from_hex(h.header_rlp), expected_hash=from_hex(h.hash))
        except ProofError as e:
            if not quiet:
                self.report.problems.append(f"header {h.chain_id}:{h.number}: {e}")
            return
        parent, root = to_hex(rebuilt.parent_hash), to_hex(rebuilt.state_root)
        if (root, rebuilt.number, parent) != (h.state_root, h.number, h.parent_hash) and not quiet:
            self.report.problems.append(f"header {h.chain_id}:{h.number}: its fields are not "
                                        f"its RLP's")
        self.headers.add(h.chain_id, h.hash, Anchor(rebuilt.number, parent, root))
        self.report.headers += 0 if quiet else 1

    def price(self, record: LogRecord, quiet: bool = False) -> None:
        update = decode(PriceUpdate, record.value)
        self.rounds.add(update)
        self.prices.apply(update)

    def vol(self, record: LogRecord, quiet: bool = False) -> None:
        self.vol_rounds.add(decode(PriceUpdate, record.value))

    def reorg(self, record: LogRecord, quiet: bool = False) -> None:
        self.reorgs.add(decode(ChainReorg, record.value))

    def book(self, raw: bytes | None, offset: int = -1) -> None:
        b = decode(ProvenBook, raw)
        if self.keyed_elsewhere(b.trader):
            return
        problem = self.verify_book(b)
        if problem is not None:
            self.trader(b.trader).differences.append(f"book {b.event_id}: {problem}")
            return
        if b.event_id not in self.books:
            key = TraderState.book_key(b.chain_id, b.venue)
            seen = BookSeen(b.event_id, offset, b.trader, key, book_order(b), b.chain_id,
                            b.block_hash, b.block_number, b.state_root)
            self.seen[b.event_id] = seen
            self.by_trader.setdefault(b.trader, {}).setdefault(key, []).append(seen)
        self.books[b.event_id] = b.head()
        self.report.books += 1

    def verify_book(self, b: ProvenBook) -> str | None:
        """What is wrong with the book's proofs against its own state root, if anything."""
        if len(self.nodes) > CACHED_NODES:
            self.nodes = NodeCache()
            self.accounts = {}
        try:
            # Every book of a venue at one block carries the same account proof: its
            # storage root is proven once (the same inputs verify the same way).
            proven = (b.state_root, b.venue, b.account_proof)
            account = self.accounts.get(proven)
            if account is None:
                account = verify_account(from_hex(b.state_root), from_hex(b.venue),
                                         [from_hex(n) for n in b.account_proof],
                                         cache=self.nodes)
                self.accounts[proven] = account
            word = verify_storage(account.storage_root, int(b.storage_slot, 16),
                                  [from_hex(n) for n in b.storage_proof], cache=self.nodes)
        except ProofError as e:
            return f"{type(e).__name__}: {e}"
        if word != int(b.commitment, 16):
            return "proven word is not the commitment"
        # The proof holds for the word alone: the book margined must be what it commits to.
        if book_commitment(b.trader, b.collateral_wad, b.positions) != b.commitment:
            return "positions and collateral do not hash to the proven commitment"
        return None

    def attestation(self, raw: bytes | None) -> None:
        a = decode(Attestation, raw)
        if self.keyed_elsewhere(a.trader):
            return
        audit = self.trader(a.trader)
        audit.attestations += 1
        before, last = self.previous.get(a.trader, (None, None))
        if last is not None and a.sequence == last.sequence:
            # Emitted again by a worker killed after the attestation reached the log and
            # before its state did: it re-margined the same books from the state before
            # ``last`` (perhaps at newer prices) and its state now holds this one.
            audit.repeated += 1
            previous = before
        else:
            previous = last
            expected_sequence = (last.sequence if last else 0) + 1
            if a.sequence != expected_sequence:
                audit.differences.append(
                    f"sequence {a.sequence} follows {expected_sequence - 1}")
        self.previous[a.trader] = (previous, a)
        missing = [e for e in a.book_events if e not in self.books]
        if missing:
            audit.differences.append(f"sequence {a.sequence}: books not in the log: {missing}")
            return
        inputs = self.check_books(a) + self.check_prices(a) + self.check_risk_day(a)
        if inputs:
            audit.differences.extend(inputs)
            return
        if a.trader in self.pending:
            self.flush()
        self.pending[a.trader] = (a, previous)
        if len(self.pending) >= BATCH:
            self.flush()

    def check_books(self, a: Attestation) -> list[str]:
        """Are the books ``a`` names its trader's, and the newest of each (chain, venue)
        read up to its ``book_offset`` (none orphaned by a reorg of the log so far)?"""
        out = []
        named: dict[str, str] = {}
        for event_id in a.book_events:
            seen = self.seen[event_id]
            self.named.setdefault(event_id, (a.trader, a.sequence))
            if seen.trader != a.trader:
                out.append(f"sequence {a.sequence}: names book {event_id} of {seen.trader}")
            named[seen.key] = event_id
        for key, books in self.by_trader.get(a.trader, {}).items():
            read = [b for b in books if b.offset <= a.book_offset
                    and not self.reorgs.orphans(b.chain_id, b.block_hash)]
            newest = max(read, key=lambda b: b.order, default=None)
            expected = None if newest is None else newest.event_id
            if named.get(key) != expected:
                out.append(f"sequence {a.sequence}: book of {key} is {named.get(key)}, the "
                           f"newest read by offset {a.book_offset} is {expected}")
        return out

    def check_prices(self, a: Attestation) -> list[str]:
        """Is every price (and implied volatility) ``a`` lists the median of oracle rounds
        in the log, observed by its data clock?"""
        found, quotes = self.price_inputs(a)
        for q in quotes:
            self.quoted.setdefault((q.asset, q.source, q.round_id), q)
        return found

    def price_inputs(self, a: Attestation) -> tuple[list[str], list[PriceUpdate]]:
        """The differences ``check_prices`` reports, and the rounds ``a``'s prices are
        the medians of."""
        out: list[str] = []
        quoted: list[PriceUpdate] = []
        for price, rounds in [*((p, self.rounds) for p in a.prices),
                              *((v, self.vol_rounds) for v in a.vols)]:
            key = (rounds.topic, price)
            cached = self.priced.get(key)
            if cached is None:
                cached = rounds.check_price(price)
                if not cached[0]:
                    # Only a price that checked out: one short of rounds may be completed
                    # by records read later (an attester judges as the log arrives).
                    self.priced[key] = cached
            found, quotes = cached
            out += [f"sequence {a.sequence}: {f}" for f in found]
            if price.observed_at > a.issued_at:
                out.append(f"sequence {a.sequence}: {rounds.kind} of {price.asset} observed "
                           f"at {price.observed_at}, after the data clock {a.issued_at}")
            quoted += quotes
        return out, quoted

    def check_risk_day(self, a: Attestation) -> list[str]:
        """Was ``a`` margined with closes at most ``STALE_RISK_DAYS`` older than those the
        log had closed before it (a worker's view lags the log by moments, not days)?"""
        markets = tuple(sorted(p.asset for p in a.prices))
        through = self.prices.days.closed_through(markets)
        if through is None or self.prices.days.basis(markets, self.params, through) is None:
            return []
        used = a.risk.day if a.risk is not None else None
        if used is not None and used >= through - STALE_RISK_DAYS:
            return []
        return [f"sequence {a.sequence}: margined with the closes of day {used}, the log "
                f"had closed day {through}"]

    def flush(self, final: bool = False) -> None:
        """Recompute the pending attestations, one engine call per set of prices, risk
        day and markets, and compare each with what was emitted (one whose risk day is
        not closed in the log read so far waits for ``finish``, unless ``final``)."""
        groups: dict[tuple[int | None, tuple[AttestedPrice, ...], tuple[AttestedPrice, ...]],
                     list[tuple[Attestation, Attestation | None]]] = {}
        for a, previous in self.pending.values():
            day = a.risk.day if a.risk is not None else None
            if not final and day is not None:
                through = self.prices.days.closed_through([p.asset for p in a.prices])
                if through is None or through < day:
                    self.later.append((a, previous))
                    continue
            groups.setdefault((day, a.prices, a.vols), []).append((a, previous))
        self.pending = {}
        for items in groups.values():
            for (a, _), recomputed in zip(items, self.recompute(items), strict=True):
                self.compare(a, recomputed)

    def recompute(self, items: Sequence[tuple[Attestation, Attestation | None]]
                  ) -> list[Attestation | None]:
        """Each attestation (after the one before it) recomputed from the books and
        prices it names, in one engine call: they share one set of prices, vols and
        risk day (``None``: nothing to attest)."""
        first = items[0][0]
        day = first.risk.day if first.risk is not None else None
        prices = {p.asset: attested_to_oracle(p) for p in first.prices}
        states = [self.state_before(a, previous) for a, previous in items]
        # Without a risk day the attestation was margined with the static model.
        implied = {v.asset: attested_to_oracle(v) for v in first.vols}
        margins = margin_by_market_set(states, prices, self.params, self.settings.implied_vol,
                                       self.prices.days if day is not None else None, day,
                                       implied)
        return [next_attestation(state, margin[0], margin[1], self.settings, prices,
                                 margin[2], implied) if margin is not None else None
                for state, margin in zip(states, margins, strict=True)]

    def compare(self, a: Attestation, recomputed: Attestation | None) -> None:
        audit = self.trader(a.trader)
        if recomputed is None:
            audit.differences.append(f"sequence {a.sequence}: emitted although nothing moved")
            return
        if recomputed == a:
            audit.matched += 1
            return
        audit.differences.append(f"sequence {a.sequence}: recomputed differs in "
                                 f"{differing_fields(a, recomputed)}")

    def state_before(self, a: Attestation, previous: Attestation | None) -> TraderState:
        """The trader's state as the worker held it: ``a``'s books, after ``previous``
        (the credit rules depend on it)."""
        # Margining reads a history's newest book per (chain, venue) only: the books
        # named are those, one per key.
        books = [self.books[event_id] for event_id in a.book_events]
        return TraderState(
            trader=a.trader, sequence=a.sequence - 1,
            history={TraderState.book_key(b.chain_id, b.venue): (b,) for b in books},
            last=Attested.of(previous) if previous is not None else None,
            book_offset=a.book_offset)


def differing_fields(a: Attestation, recomputed: Attestation) -> list[str]:
    return [f for f in Attestation.model_fields if getattr(recomputed, f) != getattr(a, f)]


def attested_to_oracle(p: AttestedPrice) -> OraclePrice:
    return OraclePrice(p.asset, p.price_wad, p.observed_at, p.degraded, breaker=p.breaker,
                       rounds=tuple((r.source, r.round_id) for r in p.rounds))


BY_TRADER = frozenset({topics.POSITION_PROVEN, topics.ATTESTATION})
# Read by every share: what every trader's inputs are held against.
SHARED: dict[str, Callable[[Auditor, LogRecord, bool], None]] = {
    topics.BLOCK_HEADER: Auditor.header, topics.PRICE: Auditor.price, topics.VOL: Auditor.vol,
    topics.REORG: Auditor.reorg}


def share_of(key: bytes | None, count: int) -> int:
    return zlib.crc32(key or b"") % count


# The log the forked share processes read, and their shared count of records read:
# inherited, not pickled to them.
_LOG: tuple[Sequence[LogRecord], StreamSettings, MarginParams, int, Any,
            Mapping[int, int]] | None = None


def _audit_share(index: int) -> AuditReport:
    assert _LOG is not None
    records, settings, params, count, read, finality = _LOG

    def count_read(n: int) -> None:
        with read.get_lock():
            read.value += n

    return Auditor(settings, params, share=(index, count), finality=finality
                   ).feed_all(records, count_read)


def audit(records: Sequence[LogRecord], settings: StreamSettings, params: MarginParams,
          processes: int = 1, progress: Callable[[int], None] | None = None,
          finality: Mapping[int, int] | None = None) -> AuditReport:
    """``Auditor.feed_all`` over ``processes`` forked processes, one share of the traders
    each; the same report as one auditor gives (up to the order of its traders).
    ``progress`` is told, every so often, how many records have been read (on several
    processes, their average: every share reads the whole log)."""
    LongLivedHeap().start()  # the log itself is frozen out of collections (and shared on fork)
    if processes <= 1:
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(done)

        return Auditor(settings, params, finality=finality).feed_all(records, advance)
    global _LOG
    context = multiprocessing.get_context("fork")
    read = context.Value("q", 0)
    _LOG = (records, settings, params, processes, read, finality or {})
    try:
        with context.Pool(processes) as pool:
            shares = pool.map_async(_audit_share, range(processes))
            while not shares.ready():
                shares.wait(0.25)
                if progress is not None:
                    progress(read.value // processes)
            return merge(shares.get())
    finally:
        _LOG = None
