"""Delivery retry state that survives restarts, and the retry loop that uses it.

One JSON file per satellite chain in the node's state directory records, per
(trader, sequence), the attempts made, when the next may start and the last reason;
after the last attempt the entry stays as ``dead_lettered`` with its reason, where an
operator can read it (and ``relayer.delivery.v1`` says the same).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Generic, TypeVar

from relayer.statedir import write_atomically

BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 180.0)  # then 180 s each (Hyperlane's shape)


@dataclass(frozen=True)
class RetryEntry:
    attempts: int
    next_attempt_at: float  # unix seconds
    reason: str
    status: str  # "retrying" | "dead_lettered"


E = TypeVar("E")


class JsonStore(Generic[E]):
    """Entries of one dataclass type by key, in one JSON file rewritten atomically on
    every change (a crash leaves the old or the new state, never half of one)."""

    def __init__(self, path: Path, entry: Callable[..., E]) -> None:
        self.path = path
        self.entries: dict[str, E] = {}
        if path.exists():
            self.entries = {k: entry(**v) for k, v in json.loads(path.read_text()).items()}

    def get(self, key: str) -> E | None:
        return self.entries.get(key)

    def put(self, key: str, entry: E | None) -> None:
        if entry is None:
            self.entries.pop(key, None)
        else:
            self.entries[key] = entry
        as_dicts = {k: asdict(v) for k, v in self.entries.items()}  # type: ignore[call-overload]
        write_atomically(self.path, json.dumps(as_dicts, indent=1))


class RetryStore(JsonStore[RetryEntry]):
    def __init__(self, path: Path) -> None:
        super().__init__(path, RetryEntry)


async def with_retries(key: str, attempt: Callable[[], Awaitable[tuple[bool, str]]],
                       store: RetryStore, max_attempts: int,
                       backoff_s: Sequence[float] = BACKOFF_S,
                       now: Callable[[], float] = time.time,
                       sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                       ) -> tuple[bool, str]:
    """Run ``attempt`` (→ (finished, reason)) until it finishes or ``max_attempts`` are
    spent, counting attempts made before a restart. Returns (finished, last reason)."""
    entry = store.get(key)
    if entry is not None and entry.status == "dead_lettered":
        return False, entry.reason
    attempts = entry.attempts if entry else 0
    reason = entry.reason if entry else ""
    while attempts < max_attempts:
        if entry is not None and entry.next_attempt_at > now():
            await sleep(entry.next_attempt_at - now())
        finished, reason = await attempt()
        if finished:
            store.put(key, None)
            return True, reason
        attempts += 1
        delay = backoff_s[min(attempts - 1, len(backoff_s) - 1)]
        entry = RetryEntry(attempts, now() + delay, reason, "retrying")
        store.put(key, entry)
    store.put(key, RetryEntry(attempts, 0.0, reason, "dead_lettered"))
    return False, reason


@dataclass(frozen=True)
class InFlight:
    """A transaction sent for a delivery and not yet confirmed: its nonce and fees, so a
    replacement reuses the nonce (nothing queues behind a stuck transaction) and pays
    enough more to be accepted."""

    nonce: int
    max_fee_wei: int
    priority_fee_wei: int
    tx_hash: str


class InFlightStore(JsonStore[InFlight]):
    """Written *before* a transaction is sent: a node killed between sending and
    confirming finds the nonce again when it restarts."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, InFlight)


@dataclass(frozen=True)
class Awaiting:
    """Where a pending attestation's signatures stand on one chain (attesters by
    address; a refusal with the differences it named)."""

    threshold: int
    signed: list[str]
    refused: dict[str, list[str]]
    silent: list[str]


class AwaitingStore(JsonStore[Awaiting]):
    def __init__(self, path: Path) -> None:
        super().__init__(path, Awaiting)
