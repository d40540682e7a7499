"""Running an attester: check its providers, read its own verdicts back, then fold the
log from its beginning and answer each proposal once, until stopped.

A log that vanishes under it (another epoch, ``bus.epoch``) stops it with an incident
file and ``LogHalted``; it keeps nothing it must trust across a restart (it rebuilds
from the log and its own verdicts there), so it takes the log's epoch afresh each start.

It reads the log as an auditor does (no consumer group can hand it a share: it needs
every header, round and book), and commits how far it has answered under its own group,
``xmargin-attester-<address>``, where an operator reads its lag as any consumer's.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from attester import metrics
from attester.attester import INPUTS, Attester
from attester.headers import DebitVoucher, HeaderVoucher
from attester.settings import AttesterSettings
from attester.watchtower import OwnSignatures, Sentinel
from attester.witness import NoQuorum, Quorum, Witness
from bus import epoch
from bus import metrics as bus_metrics
from bus.admin import ensure_topics, topic_partitions, wait_known
from bus.consumer import log_reader, read_from_beginning, tail_of
from bus.publisher import Publisher
from relayer.delivery.signing import load_keystore
from relayer.errors import ConfigError, LogHalted
from streams.audit_report import LogRecord
from wire import topics
from wire.records import HeaderVouch

log = logging.getLogger(__name__)
READ = (*INPUTS, topics.ATTESTATION, topics.SIGNATURE)


async def check_chains(settings: AttesterSettings) -> dict[int, Quorum]:
    quorums = {c.chain_id: Quorum(c) for c in settings.chains}
    try:
        for i, chain in enumerate(settings.chains):
            try:
                reported = await quorums[chain.chain_id].agreed("eth_chainId", [],
                                                                lambda r: int(r, 16))
            except NoQuorum as e:
                raise ConfigError(f"chains.{i}.rpc_urls", str(e)) from e
            if reported != chain.chain_id:
                raise ConfigError(f"chains.{i}.chain_id",
                                  f"configured {chain.chain_id} but the RPC reports {reported}")
    except ConfigError:
        await asyncio.gather(*(q.close() for q in quorums.values()))
        raise
    return quorums


def group_of(address: str) -> str:
    return f"xmargin-attester-{address}"


class Cycles:
    """The read loop's fetches, counted: a watcher waits until the loop has caught up
    with the log once, then until a fetch that began after it asked has been folded
    (so every verdict on the log before that moment has been read)."""

    def __init__(self) -> None:
        self.started = 0
        self.folded = 0
        self.current = False  # a fetch came back empty: the start-up backlog is read
        self.changed = asyncio.Condition()

    async def fold_done(self, empty: bool) -> None:
        async with self.changed:
            self.folded = self.started
            self.current = self.current or empty
            self.changed.notify_all()

    async def caught_up(self) -> None:
        async with self.changed:
            after = self.started
            await self.changed.wait_for(lambda: self.current and self.folded > after)


async def run_attester(settings: AttesterSettings, stop: asyncio.Event) -> None:
    signer = load_keystore(settings.signer, "signer")  # a bad keystore fails the start
    witness = Witness(await check_chains(settings))
    attester = Attester(settings, signer, witness)
    own = OwnSignatures(settings.state_dir / "signed.jsonl")
    attester.watch.mine = own.load()
    bootstrap = settings.kafka.bootstrap
    await ensure_topics(bootstrap, settings.streams.partitions)
    await wait_known(bootstrap, READ)
    publisher = Publisher(bootstrap)
    await publisher.start()
    # What this signer answered before a restart is not answered again.
    known = await topic_partitions(bootstrap, [topics.SIGNATURE])
    for raw in await tail_of(bootstrap, topics.SIGNATURE, set(known[topics.SIGNATURE]), None):
        attester.answered_before(raw)
    epoch_file = epoch.EpochFile(settings.state_dir / "log-epoch.json")
    epoch_file.path.unlink(missing_ok=True)
    bus_metrics.LOG_VANISHED.set(0)
    vanished: list[str] = []
    halted = asyncio.Event()

    async def halt(e: epoch.LogVanished) -> None:
        vanished.append(str(epoch.record(e, settings.state_dir, "attester")))
        halted.set()

    async def forward() -> None:
        await stop.wait()
        halted.set()

    watching = [asyncio.create_task(epoch.watch(bootstrap, epoch_file, False, halt, halted)),
                asyncio.create_task(forward())]
    reader = log_reader(bootstrap)
    progress = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group_of(attester.address),
                                enable_auto_commit=False)
    await reader.start()
    await progress.start()
    read: dict[tuple[str, int], int] = {}
    cycles = Cycles()
    async def publish_vouch(vouch: HeaderVouch) -> None:
        await publisher.publish(topics.HEADER_VOUCH, vouch.trader, vouch)
        metrics.HEADER_VOUCHES.inc()
        log.info("header vouched", extra={"trader": vouch.trader, "nonce": vouch.nonce,
                                          "chain": vouch.src_chain, "block": vouch.number})

    watching.append(asyncio.create_task(DebitVoucher(
        settings.chains, HeaderVoucher(settings.chains, signer, witness), witness.quorums,
        attester.debits, publish_vouch).run(halted)))
    if settings.watch:
        watching += [asyncio.create_task(Sentinel(
            chain, witness.quorums[chain.chain_id], signer, attester.watch, cycles.caught_up,
            settings.watch_poll_s).run(halted)) for chain in settings.chains]
    log.info("attester started", extra={"attester": attester.address,
                                        "answered_before": len(attester.answered)})
    try:
        partitions = await read_from_beginning(reader, bootstrap, list(READ))
        # Assigned only to commit to (it never fetches).
        progress.assign([tp for tp in partitions if tp.topic == topics.ATTESTATION])
        while not halted.is_set():
            cycles.started += 1
            batches = await reader.getmany(timeout_ms=200)
            bus_metrics.beat()
            for tp, messages in batches.items():
                bus_metrics.RECORDS_CONSUMED.labels(topic=tp.topic).inc(len(messages))
                for m in messages:
                    attester.fold(LogRecord(m.topic, m.partition, m.offset, m.timestamp,
                                            m.key, m.value))
                    read[(m.topic, m.partition)] = m.offset + 1
            await cycles.fold_done(not batches)
            for verdict in await attester.decide(lambda t, p: read.get((t, p), 0)):
                if verdict.signatures:
                    own.add(verdict)  # its own before the log can hold it
                await publisher.publish(topics.SIGNATURE, verdict.trader, verdict)
                outcome = "refused" if verdict.refused else "signed"
                metrics.VERDICTS.labels(outcome=outcome).inc()
                log.info(f"attestation {outcome}", extra={
                    "trader": verdict.trader, "sequence": verdict.sequence,
                    "differences": list(verdict.refused)})
            metrics.PENDING.set(len(attester.pending))
            answered = {TopicPartition(t, p): OffsetAndMetadata(n, "")
                        for (t, p), n in read.items() if t == topics.ATTESTATION}
            if batches and answered and not attester.pending:
                await progress.commit(answered)
    finally:
        for task in watching:
            task.cancel()
        await reader.stop()
        await progress.stop()
        await publisher.stop()
        await witness.close()
    if vanished:
        raise LogHalted("the log vanished under the attester", vanished[0])
