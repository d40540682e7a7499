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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine import MarginParams
from proofs import ProofError, header_from_rlp, verify_account, verify_storage
from proofs.account import Account
from proofs.mpt import NodeCache
from streams.heap import LongLivedHeap
from streams.oracle import OraclePrice
from streams.risk import margin_by_market_set, next_attestation
from streams.settings import StreamSettings
from streams.state import Attested, TraderState
from wire import topics
from wire.commitment import book_commitment
from wire.hexstr import from_hex, to_hex
from wire.records import (
    Attestation,
    BlockHeaderRecord,
    BookHead,
    ProvenBook,
    RecordError,
    decode,
)


@dataclass(frozen=True)
class LogRecord:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None


@dataclass
class TraderAudit:
    trader: str
    attestations: int = 0
    matched: int = 0
    repeated: int = 0  # a sequence number emitted again (each copy is recomputed too)
    differences: list[str] = field(default_factory=list)


@dataclass
class AuditReport:
    records: int = 0
    refused: int = 0
    headers: int = 0
    books: int = 0
    traders: dict[str, TraderAudit] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # not tied to one trader

    @property
    def attestations(self) -> int:
        return sum(t.attestations for t in self.traders.values())

    @property
    def matched(self) -> int:
        return sum(t.matched for t in self.traders.values())

    @property
    def ok(self) -> bool:
        return not self.problems and all(not t.differences for t in self.traders.values())


# Attestations recomputed per engine call, and proof nodes remembered (by content).
BATCH = 512
CACHED_NODES = 200_000
PROGRESS_EVERY = 2_000  # records read between two progress reports


class Auditor:
    """Feed records in log order (``feed``), then ``finish``; or ``feed_all``.

    Attestations are recomputed in batches (at most one per trader, so each batch sees
    the previous attestation it follows): the engine gives a trader the same bits alone
    or in a batch over the same markets, so batching changes nothing but the speed.
    """

    def __init__(self, settings: StreamSettings, params: MarginParams,
                 share: tuple[int, int] = (0, 1)) -> None:
        self.settings = settings
        self.params = params
        # (index, count): this auditor takes the traders whose key hashes to ``index``.
        self.share = share
        self.report = AuditReport()
        self.state_roots: dict[tuple[int, str], str] = {}
        self.books: dict[str, BookHead] = {}  # verified, kept without their proofs
        # Per trader: the attestation before the last one, and the last one.
        self.previous: dict[str, tuple[Attestation | None, Attestation]] = {}
        self.pending: dict[str, tuple[Attestation, Attestation | None]] = {}
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
        """Recompute what is still pending; the report is complete after this."""
        self.flush()
        return self.report

    def feed(self, record: LogRecord) -> None:
        index, count = self.share
        if record.topic in BY_TRADER:
            if share_of(record.key, count) != index:
                return
        elif index != 0:  # every share needs the state roots; share 0 reports on headers
            if record.topic == topics.BLOCK_HEADER:
                with contextlib.suppress(RecordError):
                    self.header(record.value, quiet=True)
            return
        self.report.records += 1
        handler = {topics.BLOCK_HEADER: self.header, topics.POSITION_PROVEN: self.book,
                   topics.ATTESTATION: self.attestation}.get(record.topic)
        if handler is None:
            return
        try:
            handler(record.value)
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

    def header(self, raw: bytes | None, quiet: bool = False) -> None:
        """Keep the header's state root; ``quiet``: without reporting on it (another
        share does)."""
        h = decode(BlockHeaderRecord, raw)
        try:
            rebuilt = header_from_rlp(from_hex(h.header_rlp),
                                      expected_hash=from_hex(h.hash))
        except ProofError as e:
            if not quiet:
                self.report.problems.append(f"header {h.chain_id}:{h.number}: {e}")
            return
        if to_hex(rebuilt.state_root) != h.state_root and not quiet:
            self.report.problems.append(f"header {h.chain_id}:{h.number}: state root differs")
        self.state_roots[(h.chain_id, h.hash)] = h.state_root
        self.report.headers += 0 if quiet else 1

    def book(self, raw: bytes | None) -> None:
        b = decode(ProvenBook, raw)
        if self.keyed_elsewhere(b.trader):
            return
        audit = self.trader(b.trader)
        known_root = self.state_roots.get((b.chain_id, b.block_hash))
        if known_root is not None and known_root != b.state_root:
            audit.differences.append(f"book {b.event_id}: state root is not its header's")
        if len(self.nodes) > CACHED_NODES:
            self.nodes = NodeCache()
            self.accounts = {}
        try:
            # Every book of a venue at one block carries the same account proof: its
            # storage root is proven once (the same inputs verify the same way).
            proven = (b.state_root, b.venue, b.account_proof)
            account = self.accounts.get(proven)
            if account is None:
                account = verify_account(from_hex(b.state_root),
                                         from_hex(b.venue),
                                         [from_hex(n) for n in b.account_proof],
                                         cache=self.nodes)
                self.accounts[proven] = account
            word = verify_storage(account.storage_root, int(b.storage_slot, 16),
                                  [from_hex(n) for n in b.storage_proof],
                                  cache=self.nodes)
        except ProofError as e:
            audit.differences.append(f"book {b.event_id}: {type(e).__name__}: {e}")
            return
        if word != int(b.commitment, 16):
            audit.differences.append(f"book {b.event_id}: proven word is not the commitment")
            return
        # The proof holds for the word alone: the book margined must be what it commits to.
        if book_commitment(b.trader, b.collateral_wad, b.positions) != b.commitment:
            audit.differences.append(f"book {b.event_id}: positions and collateral do not "
                                     f"hash to the proven commitment")
            return
        self.books[b.event_id] = b.head()
        self.report.books += 1

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
        if a.trader in self.pending:
            self.flush()
        self.pending[a.trader] = (a, previous)
        if len(self.pending) >= BATCH:
            self.flush()

    def flush(self) -> None:
        """Recompute the pending attestations, one engine call per set of prices and
        markets, and compare each with what was emitted."""
        groups: dict[tuple[object, ...], list[tuple[Attestation, Attestation | None]]] = {}
        for a, previous in self.pending.values():
            groups.setdefault(tuple(a.prices), []).append((a, previous))
        self.pending = {}
        for items in groups.values():
            prices = {p.asset: OraclePrice(p.asset, p.price_wad, p.observed_at, p.degraded,
                                           breaker=p.breaker) for p in items[0][0].prices}
            states = [self.state_before(a, previous) for a, previous in items]
            margins = margin_by_market_set(states, prices, self.params, self.settings.implied_vol)
            for (a, _), state, margin in zip(items, states, margins, strict=True):
                recomputed = (next_attestation(state, margin[0], margin[1], self.settings,
                                               prices) if margin is not None else None)
                self.compare(a, recomputed)

    def compare(self, a: Attestation, recomputed: Attestation | None) -> None:
        audit = self.trader(a.trader)
        if recomputed is None:
            audit.differences.append(f"sequence {a.sequence}: emitted although nothing moved")
            return
        if recomputed == a:
            audit.matched += 1
            return
        fields = [f for f in Attestation.model_fields if getattr(recomputed, f) != getattr(a, f)]
        audit.differences.append(f"sequence {a.sequence}: recomputed differs in {fields}")

    def state_before(self, a: Attestation, previous: Attestation | None) -> TraderState:
        """The trader's state as the worker held it: ``a``'s books, after ``previous``
        (the credit rules depend on it)."""
        # Margining reads a history's newest book per (chain, venue) only: the books
        # named are those, one per key.
        books = [self.books[event_id] for event_id in a.book_events]
        return TraderState(
            trader=a.trader, sequence=a.sequence - 1,
            history={TraderState.book_key(b.chain_id, b.venue): (b,) for b in books},
            last=Attested.of(previous) if previous is not None else None)


BY_TRADER = frozenset({topics.POSITION_PROVEN, topics.ATTESTATION})


def share_of(key: bytes | None, count: int) -> int:
    return zlib.crc32(key or b"") % count


def merge(reports: Sequence[AuditReport]) -> AuditReport:
    """One report from the shares' (their traders are disjoint)."""
    out = AuditReport()
    for r in reports:
        out.records += r.records
        out.refused += r.refused
        out.headers += r.headers
        out.books += r.books
        out.traders.update(r.traders)
        out.problems += r.problems
    return out


# The log the forked share processes read, and their shared count of records read:
# inherited, not pickled to them.
_LOG: tuple[Sequence[LogRecord], StreamSettings, MarginParams, int, Any] | None = None


def _audit_share(index: int) -> AuditReport:
    assert _LOG is not None
    records, settings, params, count, read = _LOG

    def count_read(n: int) -> None:
        with read.get_lock():
            read.value += n

    return Auditor(settings, params, share=(index, count)).feed_all(records, count_read)


def audit(records: Sequence[LogRecord], settings: StreamSettings, params: MarginParams,
          processes: int = 1, progress: Callable[[int], None] | None = None) -> AuditReport:
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

        return Auditor(settings, params).feed_all(records, advance)
    global _LOG
    context = multiprocessing.get_context("fork")
    read = context.Value("q", 0)
    _LOG = (records, settings, params, processes, read)
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
