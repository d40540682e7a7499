"""Delivery retries: attempts survive a restart; the last one leaves a visible
dead-letter entry with its reason; success clears the entry."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from relayer.delivery.retries import RetryStore, with_retries


class Clock:
    def __init__(self) -> None:
        self.t = 1_000.0
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


def failing(calls: list[int], succeed_on: int | None = None):  # type: ignore[no-untyped-def]
    async def attempt() -> tuple[bool, str]:
        calls.append(1)
        if succeed_on is not None and len(calls) == succeed_on:
            return True, ""
        return False, f"rpc down (try {len(calls)})"
    return attempt


def run(path: Path, attempt, clock: Clock, max_attempts: int = 4):  # type: ignore[no-untyped-def]
    return asyncio.run(with_retries("0xabc:7", attempt, RetryStore(path), max_attempts,
                                    backoff_s=(1.0, 5.0), now=clock.now, sleep=clock.sleep))


def test_attempts_survive_a_restart_and_end_in_a_visible_dead_letter(tmp_path: Path) -> None:
    path, clock, calls = tmp_path / "deliveries.json", Clock(), []

    async def crash_after_two() -> tuple[bool, str]:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the process dies mid-flight
        return False, f"rpc down (try {len(calls)})"

    with pytest.raises(KeyboardInterrupt):
        run(path, crash_after_two, clock)
    assert RetryStore(path).get("0xabc:7").attempts == 2  # type: ignore[union-attr]
    finished, reason = run(path, failing(calls), clock)  # the restarted node
    assert not finished and len(calls) == 5  # 2 before the crash + 1 lost + 2 after
    entry = RetryStore(path).get("0xabc:7")
    assert entry is not None and entry.status == "dead_lettered" and entry.attempts == 4
    assert reason == entry.reason == "rpc down (try 5)"
    assert clock.slept[-1] == 5.0  # backoff from the schedule, resumed after the restart
    before = len(calls)
    assert run(path, failing(calls), clock) == (False, reason)
    assert len(calls) == before  # dead-lettered: not tried again


def test_success_clears_the_entry(tmp_path: Path) -> None:
    path, clock, calls = tmp_path / "deliveries.json", Clock(), []
    assert run(path, failing(calls, succeed_on=3), clock) == (True, "")
    assert RetryStore(path).get("0xabc:7") is None and clock.slept == [1.0, 5.0]
