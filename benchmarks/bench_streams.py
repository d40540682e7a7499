"""Stream processing speed on the local broker: one Faust worker, 50,000 traders.

The log: 200 blocks of 1,000 proven books each (every trader's first book, then
updates of random traders) and one price tick per asset per block, 201,000 records in
all. Every proven book carries real Merkle-Patricia proofs: each block's venue storage
trie holds the commitments of that block's books under their Vyper mapping slots, so an
audit re-verifies each one against the block's state root.

Phases, all in one run:

1. ``raw_consume_events_per_s``: aiokafka alone reads the same records.
2. ``worker_events_per_s``: the log is produced first; one worker (``xmargin worker``,
   a subprocess) then works through it. Timed from its first attestation to the moment
   the end markers are attested: one new book per trader partition after the last book,
   and one price move per price partition after the last tick, on assets held by
   marker traders in every trader partition.
3. ``record_to_attestation_ms``: once the worker has finished its last batch (one more
   book, attested on its own, marks it), 2,000 more book updates at a steady 500 per
   second; latency from each record's timestamp to that of the attestation naming it (the last
   book of each trader among them: an older one may be superseded before it is margined).
4. ``price_move``: every one of the 50,000 traders gets a new book holding ETH (the
   largest leg, beside 0 or 1 other asset), then one price record moves ETH by 3 %.
   ``price_move_s``: from that record's timestamp to that of the last attestation naming
   the new price, once the worker has re-margined every holder (its attestation and
   suppression counters together, read from its ``/metrics``); ``engine_only_s``: the
   worker's margining path alone (``margin_by_market_set``: engine arrays and the engine,
   one call per set of markets) over the same 50,000 states at the new price, in this
   process.
5. ``replay_events_per_s``: ``streams.replay.audit`` over the whole log read back, on
   one process per core as ``xmargin replay`` does (headers are not in this log; books
   are re-verified, attestations recomputed).

``ceiling``: what one process could reach doing only the steps every record needs
whatever the design (``benchmarks/floor.py``: parse, one state write, an attestation's
hashes and JSON; for replay the proof hashing instead), timed on this log in this run,
with and without validating the records against their schema. It is the baseline the
targets are measured against: a target near it leaves no time for margining, the
reducers or Faust.

Prints one JSON object. Run: ``.venv/bin/python -m benchmarks.bench_streams``.
``XMARGIN_BENCH_BROKER=kafka`` runs every phase on a one-node Apache Kafka (``make
kafka``) instead of Tansu, ``=both`` on each in turn, printing ``{"tansu": …, "kafka":
…}``, each against its own ceiling. ``XMARGIN_BENCH_WORKERS=N`` runs N workers in one
consumer group instead of one (the figure is then the group's),
``XMARGIN_BENCH_PROFILE=FILE`` runs the worker under cProfile, ``XMARGIN_BENCH_EXPORT=DIR``
keeps the log as replay files.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import rlp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from trie import HexaryTrie

from benchmarks import floor
from bus.admin import ensure_topics
from bus.partitioner import partition_of
from devnet.kafka import kafka_cluster
from devnet.localnet import LocalNet, free_port
from engine import MarginParams
from proofs.keccak import keccak
from proofs.slots import vyper_mapping_slot
from relayer.chain.events import commitment_base_slot
from streams.audit_log import export, read_topics
from streams.oracle import OraclePrice
from streams.replay import audit
from streams.risk import margin_by_market_set
from streams.state import TraderState, apply_proven
from tests.support.blocks import header_record
from tests.support.configs import node_config
from tests.support.metrics import scrape
from wire import topics
from wire.commitment import book_commitment
from wire.records import Attestation, BlockHeaderRecord, Position, PriceUpdate, ProvenBook
from xmargin.config import load_settings

N_TRADERS = 50_000
BLOCKS = 200
PER_BLOCK = 1_000
PARTITIONS = 4
ASSETS = ("BTC", "ETH", "SOL", "AVAX", "LINK")
PRICES = {"BTC": 60_000.0, "ETH": 3_000.0, "SOL": 150.0, "AVAX": 35.0, "LINK": 15.0}
CHAIN = 1
VENUE = "0x" + "5e" * 20
T0 = 1_700_000_000
WAD = 10**18
EMPTY_CODE = keccak(b"")
LATENCY_RECORDS = 2_000
LATENCY_RATE = 500  # records per second
MOVE_FIRST_BLOCK = BLOCKS + 30  # the price-move phase's books, 1,000 per block
MOVE = 0.03


def trader_address(i: int) -> str:
    return f"0x{i + 1:040x}"


def header_of(number: int, state_root: bytes) -> BlockHeaderRecord:
    """Block ``number``'s header: a real RLP header over the block's state root, so that
    replay anchors the block's books to it. The bench has no chain behind its log: its
    headers are not linked, and replay takes them as final as they come (depth 0)."""
    return header_record(CHAIN, number, b"\x00" * 32, state_root, T0 + 12 * number)


def headers_of(blocks: list[list[ProvenBook]]) -> list[BlockHeaderRecord]:
    return [header_of(b[0].block_number, bytes.fromhex(b[0].state_root[2:]))
            for b in blocks if b]


def random_book(rng: np.random.Generator) -> tuple[int, tuple[Position, ...]]:
    held = rng.choice(len(ASSETS), size=int(rng.integers(1, 3)), replace=False)
    positions = tuple(
        Position(market=ASSETS[a], size_wad=int(rng.normal(0, 1) * 10_000 / PRICES[ASSETS[a]]
                                                 * WAD),
                 entry_price_wad=int(PRICES[ASSETS[a]] * WAD))
        for a in sorted(held))
    return int(rng.uniform(5_000, 50_000)) * WAD, positions


def prove_block(number: int, books: list[tuple[str, int, tuple[Position, ...]]]
                ) -> list[ProvenBook]:
    """The block's proven books: a storage trie of their commitments, a one-account state
    trie, and each book's account and storage proof (runs in a worker process)."""
    base = commitment_base_slot()
    storage = HexaryTrie({})
    entries = []
    for trader, collateral, positions in books:
        commitment = book_commitment(trader, collateral, positions)
        slot = vyper_mapping_slot(base, bytes.fromhex(trader[2:]))
        storage[keccak(slot.to_bytes(32, "big"))] = rlp.encode(int(commitment, 16))
        entries.append((trader, collateral, positions, commitment, slot))
    state = HexaryTrie({})
    address_key = keccak(bytes.fromhex(VENUE[2:]))
    state[address_key] = rlp.encode([0, 0, storage.root_hash, EMPTY_CODE])
    account_proof = tuple("0x" + rlp.encode(node).hex() for node in state.get_proof(address_key))
    h = header_of(number, state.root_hash).hash
    out = []
    for log_index, (trader, collateral, positions, commitment, slot) in enumerate(entries):
        proof = storage.get_proof(keccak(slot.to_bytes(32, "big")))
        out.append(ProvenBook(
            event_id=f"{CHAIN}:{h}:{log_index}", chain_id=CHAIN, venue=VENUE, trader=trader,
            block_number=number, block_hash=h, block_timestamp=T0 + 12 * number,
            state_root="0x" + state.root_hash.hex(), commitment=commitment,
            collateral_wad=collateral, positions=positions, account_proof=account_proof,
            storage_slot=f"0x{slot:064x}",
            storage_proof=tuple("0x" + rlp.encode(node).hex() for node in proof)))
    return out


def names_per_partition(prefix: str, count: int) -> list[str]:
    """One name hashing to each partition (the broker's murmur2 partitioner)."""
    found: dict[int, str] = {}
    n = 0
    while len(found) < count:
        name = f"{prefix}{n}"
        found.setdefault(partition_of(name.encode(), count), name)
        n += 1
    return [found[p] for p in range(count)]


def markers() -> tuple[list[str], dict[tuple[int, int], str]]:
    """Marker assets (one per price partition) and a marker trader per (asset partition,
    trader partition) holding that asset."""
    assets = names_per_partition("MK", PARTITIONS)
    traders: dict[tuple[int, int], str] = {}
    i = N_TRADERS + 10
    while len(traders) < PARTITIONS * PARTITIONS:
        address = trader_address(i)
        q = partition_of(address.encode(), PARTITIONS)
        for p in range(PARTITIONS):
            if (p, q) not in traders:
                traders[(p, q)] = address
                break
        i += 1
    return assets, traders


def price(asset: str, usd: float, block: BlockHeaderRecord, round_id: int) -> PriceUpdate:
    number = block.number
    return PriceUpdate(asset=asset, price_wad=int(usd * WAD), source="bench", round_id=round_id,
                       observed_at=T0 + 12 * number, chain_id=CHAIN, block_number=number,
                       block_hash=block.hash)


def build_log(rng: np.random.Generator) -> tuple[list[list[ProvenBook]], list[list[PriceUpdate]]]:
    """Books per block and price ticks per block, proofs built on every core."""
    held: dict[str, tuple[int, tuple[Position, ...]]] = {}
    plans = []
    for number in range(BLOCKS + LATENCY_RECORDS // PER_BLOCK):
        if number * PER_BLOCK < N_TRADERS:
            chosen = range(number * PER_BLOCK, (number + 1) * PER_BLOCK)
        else:
            chosen = rng.choice(N_TRADERS, PER_BLOCK, replace=False)
        books = []
        for i in chosen:
            trader = trader_address(int(i))
            held[trader] = random_book(rng)
            books.append((trader, *held[trader]))
        plans.append((number + 1, books))
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        proven = list(pool.map(prove_block, *zip(*plans, strict=True), chunksize=4))
    level = dict(PRICES)
    ticks = []
    for header in headers_of(proven[:BLOCKS]):
        row = []
        for a in ASSETS:
            level[a] *= 1 + rng.normal(0, 0.001)
            row.append(price(a, level[a], header, header.number))
        ticks.append(row)
    return proven, ticks


def build_move_books(rng: np.random.Generator) -> list[list[ProvenBook]]:
    """A new book for every trader, each holding ETH as its largest leg (and 0 or 1 other
    asset), 1,000 per block, proofs built on every core."""
    plans = []
    for block in range(N_TRADERS // PER_BLOCK):
        books = []
        for i in range(block * PER_BLOCK, (block + 1) * PER_BLOCK):
            eth = rng.choice((-1, 1)) * rng.uniform(5_000, 20_000) / PRICES["ETH"]
            positions = [Position(market="ETH", size_wad=int(eth * WAD),
                                  entry_price_wad=int(PRICES["ETH"] * WAD))]
            others = [a for a in ASSETS if a != "ETH"]
            if rng.uniform() < 0.5:
                a = others[int(rng.integers(len(others)))]
                positions.append(Position(
                    market=a, size_wad=int(rng.normal(0, 1) * 2_000 / PRICES[a] * WAD),
                    entry_price_wad=int(PRICES[a] * WAD)))
            books.append((trader_address(i), int(rng.uniform(5_000, 50_000)) * WAD,
                          tuple(sorted(positions, key=lambda p: p.market))))
        plans.append((MOVE_FIRST_BLOCK + block, books))
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        return list(pool.map(prove_block, *zip(*plans, strict=True), chunksize=4))


def worker_margined(port: int) -> float:
    """Attestations emitted and margin computations suppressed, so far, by the worker."""
    samples = scrape(port)
    return sum(v for (name, _), v in samples.items()
               if name in ("xmargin_attestations_total", "xmargin_attestations_suppressed_total"))


async def produce(bootstrap: str, records: list[tuple[str, str, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5,
                                max_batch_size=1 << 20)
    await producer.start()
    try:
        sent = [await producer.send(t, key=k.encode(), value=v) for t, k, v in records]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def raw_consume(bootstrap: str, names: list[str], total: int) -> float:
    consumer = AIOKafkaConsumer(*names, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                max_partition_fetch_bytes=8 << 20, fetch_max_bytes=64 << 20)
    await consumer.start()
    seen = 0
    start = time.perf_counter()
    try:
        while seen < total:
            for messages in (await consumer.getmany(timeout_ms=1000, max_records=10_000)
                             ).values():
                seen += len(messages)
    finally:
        await consumer.stop()
    return seen / (time.perf_counter() - start)


class AttestationWatch:
    """Follows risk.attestation.v1 from the start, keeping what the phases look for."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.count = 0
        self.first_ms: int | None = None
        self.by_event: dict[str, int] = {}  # book event id → first attestation timestamp
        self.latest: dict[str, tuple[int, Attestation]] = {}
        # (asset, price) watched → trader → first attestation naming that price.
        self.named: dict[tuple[str, int], dict[str, int]] = {}

    async def until(self, done: Callable[[AttestationWatch], bool], timeout_s: float) -> int:
        consumer = AIOKafkaConsumer(topics.ATTESTATION, bootstrap_servers=self.bootstrap,
                                    group_id=None, auto_offset_reset="earliest",
                                    enable_auto_commit=False)
        await consumer.start()
        deadline = time.monotonic() + timeout_s
        last_ms = 0
        try:
            while not done(self) and time.monotonic() < deadline:
                for messages in (await consumer.getmany(timeout_ms=500)).values():
                    for m in messages:
                        a = Attestation.model_validate_json(m.value)
                        self.count += 1
                        self.first_ms = m.timestamp if self.first_ms is None else self.first_ms
                        last_ms = max(last_ms, m.timestamp)
                        for e in a.book_events:
                            self.by_event.setdefault(e, m.timestamp)
                        self.latest[a.trader] = (m.timestamp, a)
                        for p in a.prices:
                            named = self.named.get((p.asset, p.price_wad))
                            if named is not None:
                                named.setdefault(a.trader, m.timestamp)
        finally:
            await consumer.stop()
        if not done(self):
            raise SystemExit(f"timed out after {timeout_s} s ({self.count} attestations seen)")
        return last_ms

    async def until_priced(self, asset: str, price_wad: int, count: int,
                           timeout_s: float) -> int:
        """The timestamp of the last of the attestations naming ``asset`` at ``price_wad``
        (the first such per trader), once ``count`` traders have one."""
        key = (asset, price_wad)
        self.named.setdefault(key, {})
        await self.until(lambda w: len(w.named[key]) >= count, timeout_s)
        return max(self.named[key].values())


# XMARGIN_BENCH_BROKER: the broker (or both, one after the other) every phase runs on.
BENCH_BROKERS = {"tansu": ("tansu",), "kafka": ("kafka",), "both": ("tansu", "kafka")}


def main() -> None:
    rng = np.random.default_rng(21)
    started = time.perf_counter()
    proven, ticks = build_log(rng)
    moving = build_move_books(np.random.default_rng(22))
    print(f"log built in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    brokers = BENCH_BROKERS.get(os.environ.get("XMARGIN_BENCH_BROKER", "tansu"))
    if brokers is None:
        raise SystemExit(f"XMARGIN_BENCH_BROKER: one of {', '.join(BENCH_BROKERS)}, not "
                         f"{os.environ['XMARGIN_BENCH_BROKER']!r}")
    results = {}
    for broker in brokers:
        with tempfile.TemporaryDirectory() as tmp, LocalNet(Path(tmp) / "logs") as net:
            bootstrap = net.broker() if broker == "tansu" else kafka_cluster(net, 1)[0].bootstrap
            print(f"on {broker} at {bootstrap}", file=sys.stderr)
            results[broker] = {"broker": broker,
                               **measure(net, bootstrap, Path(tmp), proven, ticks, moving)}
    # One broker: its figures; both: side by side, each measured against its own ceiling.
    print(json.dumps(results[brokers[0]] if len(brokers) == 1 else results))


def measure(net: LocalNet, bootstrap: str, tmp: Path, proven: list[list[ProvenBook]],
            ticks: list[list[PriceUpdate]], moving: list[list[ProvenBook]]
            ) -> dict[str, object]:
    """Every phase on the broker at ``bootstrap`` (empty), for the log built once."""
    marker_assets, marker_traders = markers()
    asyncio.run(ensure_topics(bootstrap, PARTITIONS))
    config = node_config(tmp / "node.toml", bootstrap=bootstrap, app_id="bench",
                         partitions=PARTITIONS,
                         chains=((41001, "0x" + "aa" * 20), (41002, "0x" + "bb" * 20)))
    # Markers first: their assets' prices, and their books.
    marker_books = prove_block(0, [
        (t, 10_000 * WAD, (Position(market=marker_assets[p], size_wad=50 * WAD,
                                    entry_price_wad=100 * WAD),))
        for (p, _), t in sorted(marker_traders.items())])
    end_books = prove_block(BLOCKS + 10, [
        (marker_traders[(0, q)], 20_000 * WAD,
         (Position(market=marker_assets[0], size_wad=80 * WAD, entry_price_wad=100 * WAD),))
        for q in range(PARTITIONS)])
    settle = prove_block(BLOCKS + 20, [
        (marker_traders[(0, 0)], 30_000 * WAD,
         (Position(market=marker_assets[0], size_wad=90 * WAD, entry_price_wad=100 * WAD),))
    ])[0]
    # Every block's header before anything of it, as a listener publishes them.
    move_block = header_of(MOVE_FIRST_BLOCK + len(moving), b"\x00" * 32)
    head: list[tuple[str, str, bytes]] = [
        (topics.BLOCK_HEADER, str(CHAIN), h.to_bytes())
        for h in [*headers_of([marker_books, *proven, end_books, [settle], *moving]),
                  move_block]]
    marker_block = headers_of([marker_books])[0]
    head += [(topics.PRICE, a, price(a, PRICES.get(a, 100.0), marker_block, 0).to_bytes())
             for a in (*ASSETS, *marker_assets)]
    head += [(topics.POSITION_PROVEN, b.trader, b.to_bytes()) for b in marker_books]
    body: list[tuple[str, str, bytes]] = []
    for books, row in zip(proven[:BLOCKS], ticks, strict=True):
        body += [(topics.POSITION_PROVEN, b.trader, b.to_bytes()) for b in books]
        body += [(topics.PRICE, u.asset, u.to_bytes()) for u in row]
    # End markers: a new book per trader partition, a 5% move per marker asset.
    tail = [(topics.POSITION_PROVEN, b.trader, b.to_bytes()) for b in end_books]
    end_block = headers_of([end_books])[0]
    tail += [(topics.PRICE, a, price(a, 105.0, end_block, 1).to_bytes())
             for a in marker_assets]
    asyncio.run(produce(bootstrap, head + body + tail))
    n_events = len(body)
    raw = asyncio.run(raw_consume(bootstrap, [topics.POSITION_PROVEN, topics.PRICE],
                                  sum(t != topics.BLOCK_HEADER
                                      for t, _, _ in head + body + tail)))
    print(f"{n_events} records produced; raw consume {raw:.0f}/s", file=sys.stderr)
    book_values = [v for t, _, v in body if t == topics.POSITION_PROVEN]
    worker_floor_us = floor.worker_us_per_record(book_values)
    book_schema_us = floor.schema_us_per_record(book_values, ProvenBook)
    print(f"worker floor {worker_floor_us:.1f} µs/record, schema {book_schema_us:.1f} µs;"
          f" starting the worker", file=sys.stderr)
    end_events = {b.event_id for b in end_books}

    def finished(w: AttestationWatch) -> bool:
        if not end_events <= w.by_event.keys():
            return False
        for (p, _), t in marker_traders.items():
            seen = w.latest.get(t)
            moved = seen is not None and any(
                x.asset == marker_assets[p] and x.price_wad == 105 * WAD
                for x in seen[1].prices)
            if not moved:
                return False
        return True

    # XMARGIN_BENCH_PROFILE=FILE runs the worker under cProfile, written at its exit.
    profile = os.environ.get("XMARGIN_BENCH_PROFILE")
    prefix = ["-m", "cProfile", "-o", profile] if profile else []
    # XMARGIN_BENCH_WORKERS=N starts N workers in one group (scale-out; default one).
    ports = [free_port() for _ in range(int(os.environ.get("XMARGIN_BENCH_WORKERS", "1")))]
    workers = [
        net.start(f"worker-{i}", [sys.executable, *prefix, "-m", "xmargin.cli", "worker",
                                  "--config", str(config)],
                  env={**os.environ,
                       "XMARGIN__STREAMS__DATA_DIR": str(tmp / f"worker-{i}"),
                       "XMARGIN__STREAMS__METRICS_PORT": str(port)})
        for i, port in enumerate(ports)]
    watch = AttestationWatch(bootstrap)
    last_ms = asyncio.run(watch.until(finished, timeout_s=1800))
    assert watch.first_ms is not None
    worker_s = (last_ms - watch.first_ms) / 1000
    phase1_attestations = watch.count
    print(f"worker: {n_events} records in {worker_s:.1f} s", file=sys.stderr)

    # Latency: steady arrivals on a worker that has caught up. The end markers are
    # attested before the worker has finished their batch (it stores the states and
    # writes the changelog after publishing; up to a second for a catch-up batch of
    # ~15,000 books): one more book, attested in a batch of its own, marks the
    # moment it has.
    asyncio.run(produce(bootstrap, [(topics.POSITION_PROVEN, settle.trader,
                                     settle.to_bytes())]))
    asyncio.run(watch.until(lambda w: settle.event_id in w.by_event, timeout_s=300))
    extra = [b for books in proven[BLOCKS:] for b in books][:LATENCY_RECORDS]

    async def paced() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
        await producer.start()
        try:
            t_start = time.perf_counter()
            for i, b in enumerate(extra):
                await asyncio.sleep(max(0.0, t_start + i / LATENCY_RATE
                                        - time.perf_counter()))
                await producer.send(topics.POSITION_PROVEN, key=b.trader.encode(),
                                    value=b.to_bytes())
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(paced())
    # A book is named by an attestation unless a newer book of its trader reached the
    # worker in the same batch (then only the newer one is margined): time the last
    # book of each trader.
    wanted = {b.event_id for b in {b.trader: b for b in extra}.values()}
    asyncio.run(watch.until(lambda w: wanted <= w.by_event.keys(), timeout_s=300))
    stamps = asyncio.run(read_topics(bootstrap, [topics.POSITION_PROVEN]))
    produced_ms = {ProvenBook.model_validate_json(r.value).event_id: r.timestamp_ms
                   for r in stamps[-LATENCY_RECORDS * 2:] if r.value is not None}
    latencies = np.array([watch.by_event[e] - produced_ms[e] for e in wanted])
    last_eth = next(u for u in ticks[-1] if u.asset == "ETH")
    move = price_move(bootstrap, watch, moving, move_block, ports, last_eth)
    for i, worker in enumerate(workers):
        net.stop(f"worker-{i}")
        assert worker.poll() is not None

    # Replay: the whole log, re-verified and recomputed.
    log = asyncio.run(read_topics(bootstrap))
    if os.environ.get("XMARGIN_BENCH_EXPORT"):  # keep the log, e.g. to profile replay
        export(log, Path(os.environ["XMARGIN_BENCH_EXPORT"]))
    settings = load_settings(config).stream_settings()
    processes = os.cpu_count() or 1
    replay_floor_us, _ = floor.replay_us_per_record(
        (r.topic, r.value) for r in log if r.value is not None)
    attestation_values = [r.value for r in log
                          if r.topic == topics.ATTESTATION and r.value is not None]
    attestation_schema_us = floor.schema_us_per_record(attestation_values, Attestation)
    replay_schema_us = ((book_schema_us * len(book_values)
                         + attestation_schema_us * len(attestation_values))
                        / max(len(log), 1))
    start = time.perf_counter()
    report = audit(log, settings, MarginParams(version=settings.params_version), processes,
                   finality={CHAIN: 0})
    replay_s = time.perf_counter() - start
    differences = report.problems + [d for t in report.traders.values()
                                     for d in t.differences]
    for d in differences[:10]:
        print(f"replay: {d}", file=sys.stderr)

    return {
        "traders": N_TRADERS, "records": n_events, "workers": len(workers),
        "proven_books": sum(len(b) for b in proven[:BLOCKS]), "price_records": BLOCKS * len(ASSETS),
        "attestations": phase1_attestations,
        "worker_events_per_s": round(n_events / worker_s),
        "raw_consume_events_per_s": round(raw),
        "ratio": round(n_events / worker_s / raw, 3),
        "replay_events_per_s": round(report.records / replay_s),
        "replay_processes": processes,
        "replay_records": report.records, "replay_books_verified": report.books,
        "replay_attestations_matched": f"{report.matched}/{report.attestations}",
        "replay_ok": report.ok,
        # What one process could reach doing only the steps no design avoids
        # (benchmarks/floor.py), measured on this log; "with_schema" adds validating each
        # record against its pydantic schema. Replay's is on every core, as replay runs.
        "ceiling": {
            "worker_floor_us_per_record": round(worker_floor_us, 1),
            "worker_events_per_s": round(1e6 / (1e6 / raw + worker_floor_us)),
            "worker_with_schema_events_per_s": round(
                1e6 / (1e6 / raw + worker_floor_us + book_schema_us)),
            "replay_floor_us_per_record": round(replay_floor_us, 1),
            "replay_events_per_s": round(processes * 1e6 / replay_floor_us),
            "replay_with_schema_events_per_s": round(
                processes * 1e6 / (replay_floor_us + replay_schema_us)),
        },
        "record_to_attestation_ms": {"p50": float(np.percentile(latencies, 50)),
                                     "p99": float(np.percentile(latencies, 99)),
                                     "rate_per_s": LATENCY_RATE, "n": int(latencies.size)},
        "price_move": move,
    }


def price_move(bootstrap: str, watch: AttestationWatch, moving: list[list[ProvenBook]],
               block: BlockHeaderRecord, ports: list[int], last: PriceUpdate
               ) -> dict[str, object]:
    """Every trader a book holding ETH, then ETH up 3 % from its ``last`` tick in one
    record (phase 4)."""
    books = [b for bs in moving for b in bs]
    before = sum(worker_margined(p) for p in ports)
    asyncio.run(produce(bootstrap, [(topics.POSITION_PROVEN, b.trader, b.to_bytes())
                                    for b in books]))
    wait_margined(ports, before + len(books), timeout_s=900)
    moved = price("ETH", last.price_wad / WAD * (1 + MOVE), block, block.number)
    new_wad = moved.price_wad
    before = sum(worker_margined(p) for p in ports)
    attested_before = sum(scrape(p).get(("xmargin_attestations_total", ()), 0.0)
                          for p in ports)
    sent_ms = asyncio.run(produce_one(bootstrap, topics.PRICE, "ETH", moved.to_bytes()))
    wait_margined(ports, before + len(books), timeout_s=900)
    attested = round(sum(scrape(p).get(("xmargin_attestations_total", ()), 0.0)
                         for p in ports) - attested_before)
    last_ms = asyncio.run(watch.until_priced("ETH", new_wad, attested, timeout_s=300))
    move_s = (last_ms - sent_ms) / 1000

    states = [apply_proven(TraderState(trader=b.trader), b) for b in books]
    prices = {a: OraclePrice(a, int(PRICES[a] * WAD), block.timestamp, False) for a in ASSETS}
    prices["ETH"] = OraclePrice("ETH", new_wad, block.timestamp, False)
    params = MarginParams()
    margin_by_market_set(states[:100], prices, params)  # warm
    start = time.perf_counter()
    margined = margin_by_market_set(states, prices, params)
    engine_s = time.perf_counter() - start
    assert all(m is not None for m in margined)
    print(f"price move: {len(books)} holders in {move_s:.2f} s, {attested} attested; "
          f"engine alone {engine_s:.2f} s", file=sys.stderr)
    return {"traders": len(books), "attested": attested, "price_move_s": round(move_s, 3),
            "traders_remargined_per_s": round(len(books) / move_s),
            "engine_only_s": round(engine_s, 3),
            "ratio_to_engine": round(move_s / engine_s, 2)}


def wait_margined(ports: list[int], target: float, timeout_s: float) -> None:
    """Until the workers' attestation and suppression counters reach ``target``."""
    deadline = time.monotonic() + timeout_s
    while sum(worker_margined(p) for p in ports) < target:
        if time.monotonic() > deadline:
            raise SystemExit(f"workers did not re-margin {target:.0f} states in {timeout_s} s")
        time.sleep(0.2)


async def produce_one(bootstrap: str, topic: str, key: str, value: bytes) -> int:
    """Send one record; its timestamp (ms, the producer's clock, as the workers' are)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    try:
        sent = await (await producer.send(topic, key=key.encode(), value=value))
        return int(sent.timestamp)
    finally:
        await producer.stop()


if __name__ == "__main__":
    main()
