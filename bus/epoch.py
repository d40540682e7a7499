"""The log's epoch: one marker record that tells the log from an empty or another one.

The whole design takes the log as the source of truth, and a broker can lose it: Tansu
keeps its log in memory (a restart empties it), a Kafka cluster can be recreated, a
bootstrap address can be pointed at another cluster. The first node to start on a log
writes one record to ``xmargin.log_epoch.v1`` (partition 0, a random id); every process
that builds on the log's history (the node, its workers) keeps the id it first saw
beside its own state (``EpochFile``) and checks, at start and every ``CHECK_EVERY_S``,
that the log still begins with it. When it does not (the topic gone, empty, or
beginning with another id) the process halts with an incident and
``xmargin_log_vanished`` set, instead of carrying on over a log without its history.
A broker that does not answer is not a vanished log: the check is tried again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition

from bus import metrics
from bus.consumer import log_reader
from wire import topics

log = logging.getLogger(__name__)
CHECK_EVERY_S = 10.0
MARKER = TopicPartition(topics.LOG_EPOCH, 0)


class LogVanished(Exception):
    """The log no longer holds the epoch this process built on."""

    def __init__(self, expected: str, found: str | None, bootstrap: str) -> None:
        self.evidence: dict[str, Any] = {
            "reason": ("the log has no epoch marker: it was emptied or recreated" if found is None
                       else "the log begins with another epoch: another or a recreated cluster"),
            "expected_epoch": expected, "found_epoch": found, "bootstrap": bootstrap,
            "detected_at": int(time.time()),
        }
        super().__init__(f"{self.evidence['reason']} (expected epoch {expected}, found {found})")


class EpochFile:
    """The epoch a process holds to, kept beside its state (JSON)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> str | None:
        if not self.path.exists():
            return None
        return str(json.loads(self.path.read_text())["epoch"])

    def save(self, epoch: str) -> None:
        write_atomically(self.path, json.dumps({"epoch": epoch}))


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``: a crash leaves the old file or the new one, never
    half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def record(vanished: LogVanished, directory: Path, who: str) -> Path:
    """What a process does on finding the log vanished, before it halts: the metric at
    1, the evidence in ``directory/incident-log-<unix time>.json``, a critical log line
    naming ``who`` halts. The metric comes first: the file is what callers wait on."""
    metrics.LOG_VANISHED.set(1)
    path = directory / f"incident-log-{vanished.evidence['detected_at']}.json"
    write_atomically(path, json.dumps(vanished.evidence, indent=2))
    log.critical("log vanished: the %s halts (%s); evidence in %s", who, vanished, path)
    return path


async def read_epoch(bootstrap: str, timeout_s: float = 10.0) -> str | None:
    """The epoch the log begins with, ``None`` when the marker topic is missing or
    empty. Raises (aiokafka's errors, ``TimeoutError``) when the broker does not answer."""
    consumer = log_reader(bootstrap)
    await consumer.start()
    try:
        known = await consumer.topics()
        if topics.LOG_EPOCH not in known:
            return None
        consumer.assign([MARKER])
        end = (await consumer.end_offsets([MARKER]))[MARKER]
        if not end:
            return None
        await consumer.seek_to_beginning(MARKER)
        message = await asyncio.wait_for(consumer.getone(MARKER), timeout_s)
        return str(json.loads(message.value)["epoch"])
    finally:
        await consumer.stop()


async def stamp(bootstrap: str) -> str:
    """Write a new epoch marker and return the epoch the log begins with (another
    node's, when two stamped at once: the first record wins)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        marker = {"epoch": uuid.uuid4().hex, "created_at": int(time.time())}
        await producer.send_and_wait(topics.LOG_EPOCH, json.dumps(marker).encode(),
                                     key=b"epoch", partition=0)
    finally:
        await producer.stop()
    found = await read_epoch(bootstrap)
    if found is None:
        raise TimeoutError("the epoch marker just written cannot be read back")
    return found


async def hold(bootstrap: str, file: EpochFile, create: bool) -> str | None:
    """The epoch this process builds on, checked against the log at its start.

    A process that has none yet takes the log's, writing it first when ``create`` (the
    node) and the log has none; a worker started before any node waits (``None``).
    Raises ``LogVanished`` when the log does not begin with the epoch held.
    """
    held = file.load()
    found = await read_epoch(bootstrap)
    if held is None:
        if found is None:
            if not create:
                return None
            found = await stamp(bootstrap)
        file.save(found)
        return found
    if found != held:
        raise LogVanished(held, found, bootstrap)
    return held


async def watch(bootstrap: str, file: EpochFile, create: bool,
                on_vanished: Callable[[LogVanished], Awaitable[None]], stop: asyncio.Event,
                every_s: float = CHECK_EVERY_S) -> None:
    """Check the epoch now and every ``every_s`` until ``stop``; on a vanished log call
    ``on_vanished`` once and return."""
    while not stop.is_set():
        try:
            await hold(bootstrap, file, create)
            metrics.beat()  # a supervised task's progress: the log checked
        except LogVanished as e:
            await on_vanished(e)
            return
        except Exception as e:  # the broker did not answer: not a verdict on the log
            log.warning("log epoch not checked: %r", e)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
