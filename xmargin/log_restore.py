"""``xmargin log restore``: put an exported log back on a broker that lost it.

The export is ``xmargin replay --export``'s (headers, reorgs, prices, implied vols,
proven books, attestations). Restoring:

1. refuses a log that still has an epoch (it did not vanish, or was restored already)
   unless forced; records written to the empty log before the node and workers halted
   (headers, prices: at most one epoch check's worth) may stay, they repeat what the
   chains say;
2. produces every record again on its own partition, with its key and its timestamp
   (replay orders the log by them), topic by topic in offset order;
3. commits the node's submitter groups at the end of the restored attestations (they
   are history: the next attestation supersedes any that was still undelivered);
4. writes a new epoch (``bus.epoch``) and makes it the node's;
5. rewinds each listener's checkpoint to ``finality_blocks`` below the newest exported
   header of its chain, so the books proven after the export (and those published but
   not yet proven when it was taken) are read from the chain again; repeats are
   idempotent everywhere downstream;
6. empties the worker's data directory: its states are rebuilt from the restored books,
   and each trader continues after its newest restored attestation
   (``RiskWorker.recover_sequences``), so no MarginOracle sees an old sequence again.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from bus import epoch, tansu
from bus.admin import ensure_topics, topic_partitions, wait_known
from relayer.chain.checkpoint import Checkpoint
from relayer.chain.listener import WINDOW_BEYOND_FINALITY
from relayer.errors import RelayerError
from relayer.statedir import StateDir
from streams.audit_report import LogRecord
from wire import topics
from wire.records import BlockHeaderRecord, decode
from xmargin.config import NodeSettings

RECORDS_IN_FLIGHT = 200


class RestoreRefused(RelayerError):
    label = "restore_refused"


@dataclass
class Restored:
    records: dict[str, int] = field(default_factory=dict)
    epoch: str = ""
    checkpoints: dict[int, int] = field(default_factory=dict)  # chain → next block
    worker_dir_cleared: bool = False


async def produce(bootstrap: str, records: Sequence[LogRecord]) -> dict[str, int]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    counts: dict[str, int] = {}
    try:
        ordered = sorted(records, key=lambda r: (r.topic, r.partition, r.offset))
        for start in range(0, len(ordered), RECORDS_IN_FLIGHT):
            chunk = ordered[start:start + RECORDS_IN_FLIGHT]
            await send_chunk(producer, chunk)
            for r in chunk:
                counts[r.topic] = counts.get(r.topic, 0) + 1
    finally:
        await producer.stop()
    return counts


async def send_chunk(producer: AIOKafkaProducer, chunk: Sequence[LogRecord],
                     attempts: int = 10) -> None:
    """Send ``chunk``, again after a failure: a topic the restore just created may not
    take records for a moment (Tansu answers UnknownError). One partition's records stay
    in order: each chunk is sent only after the one before it is acknowledged."""
    for attempt in range(attempts):
        futures = [await producer.send(r.topic, r.value, key=r.key, partition=r.partition,
                                       timestamp_ms=r.timestamp_ms) for r in chunk]
        results = await asyncio.gather(*futures, return_exceptions=True)
        failed = [e for e in results if isinstance(e, BaseException)]
        if not failed:
            return
        if attempt == attempts - 1:
            raise failed[0]
        await asyncio.sleep(1.0)


async def commit_at_end(bootstrap: str, group: str, topic: str) -> None:
    # Just created on a recreated Kafka cluster, the topic may not be in every broker's
    # metadata yet, nor in a new consumer's: its partitions come from the cluster.
    await wait_known(bootstrap, [topic])
    partitions = (await topic_partitions(bootstrap, [topic]))[topic]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        ends = await tansu.fetched_end_offsets(bootstrap, await consumer.end_offsets(tps))
        await consumer.commit({tp: OffsetAndMetadata(int(end or 0), "")
                               for tp, end in ends.items()})
    finally:
        await consumer.stop()


def rewind_checkpoints(settings: NodeSettings, records: Sequence[LogRecord],
                       state: StateDir) -> dict[int, int]:
    """Each listener back to ``finality_blocks`` below its chain's newest exported header,
    keeping the exported hashes below that as its recent blocks."""
    headers: dict[int, list[tuple[int, str]]] = {}
    for r in records:
        if r.topic == topics.BLOCK_HEADER:
            h = decode(BlockHeaderRecord, r.value)
            headers.setdefault(h.chain_id, []).append((h.number, h.hash))
    out = {}
    for chain in settings.chains:
        seen = sorted(set(headers.get(chain.chain_id, ())))
        if not seen:
            start = chain.start_block
            Checkpoint(start, (), start).save(state.checkpoint(chain.chain_id))
            out[chain.chain_id] = start
            continue
        below = seen[-1][0] - chain.finality_blocks
        recent = tuple(h for h in seen if h[0] <= below)[-(chain.finality_blocks
                                                             + WINDOW_BEYOND_FINALITY):]
        next_block = max(below + 1, chain.start_block)
        next_final = max(below - chain.finality_blocks + 1, chain.start_block)
        Checkpoint(next_block, recent, next_final).save(state.checkpoint(chain.chain_id))
        out[chain.chain_id] = next_block
    return out


async def restore(settings: NodeSettings, records: Sequence[LogRecord],
                  force: bool = False) -> Restored:
    bootstrap = settings.kafka.bootstrap
    if not force:
        found = await epoch.read_epoch(bootstrap)
        if found is not None:
            raise RestoreRefused(f"the log at {bootstrap} has an epoch ({found}): it did not "
                                 "vanish (--force restores over it)")
    await ensure_topics(bootstrap, settings.streams.partitions)
    names = sorted({r.topic for r in records})
    have = await topic_partitions(bootstrap, names)
    for name in names:
        wanted = max(r.partition for r in records if r.topic == name) + 1
        if len(have.get(name, ())) < max(wanted, settings.streams.partitions):
            # Written to before the node halted, a topic may have been auto-created with
            # the broker's default: records would not land on their own partitions.
            raise RestoreRefused(
                f"topic {name} has {len(have.get(name, ()))} partition(s), the export "
                f"needs {max(wanted, settings.streams.partitions)}: restore onto an empty "
                "broker (restart it empty, or recreate the cluster) with every node and "
                "worker stopped")
    done = Restored(records=await produce(bootstrap, records))
    for chain in settings.chains:
        await commit_at_end(bootstrap, f"xmargin-submitter-{chain.chain_id}", topics.ATTESTATION)
    state = StateDir(settings.state_dir)
    done.epoch = await epoch.stamp(bootstrap)
    epoch.EpochFile(state.log_epoch()).save(done.epoch)
    done.checkpoints = rewind_checkpoints(settings, records, state)
    worker_dir = settings.streams.data_dir
    if worker_dir.exists():
        shutil.rmtree(worker_dir)
        done.worker_dir_cleared = True
    return done
