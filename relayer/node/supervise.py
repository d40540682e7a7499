"""Keeping the node's tasks alive: restart what fails, stop what halts, and watch the
Faust worker process."""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
from collections.abc import Awaitable, Callable, Sequence

from bus import metrics
from relayer.errors import ChainHalted, RelayerError

log = logging.getLogger(__name__)


async def supervise(name: str, task: Callable[[], Awaitable[None]], stop: asyncio.Event,
                    halted: dict[int, str] | None = None) -> None:
    """Run ``task`` until ``stop``; restart it after a failure, halt it on an incident,
    stop it on an error that is not ``retryable``.

    The one place that catches every exception: a task must not take the node down.
    Its liveness is exported: ``xmargin_task_up``, its restarts, and the last time it
    made progress (what the task reports through ``bus.metrics.beat``).
    """
    metrics.current_task.set(name)
    up = metrics.TASK_UP.labels(task=name)
    metrics.TASK_RESTARTS.labels(task=name)  # shown at 0 before the first restart
    metrics.beat()
    backoff_s = 0.5
    try:
        while not stop.is_set():
            up.set(1)
            try:
                await task()
                return
            except ChainHalted as e:
                log.critical("chain halted", extra={"task": name, "reason": str(e)})
                if halted is not None:
                    halted[int(e.evidence["chain_id"])] = str(e)
                return
            except RelayerError as e:
                if not e.retryable:
                    # Running it again would fail the same way: stop it, visibly.
                    log.critical("task stopped", extra={"task": name, "error": e.label,
                                                         "reason": str(e)})
                    return
                failure = f"{e.label}: {e}"
            except Exception as e:
                failure = repr(e)
            up.set(0)
            metrics.TASK_RESTARTS.labels(task=name).inc()
            log.error("task failed, restarting", extra={"task": name, "error": failure})
            await asyncio.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, 30.0)
    finally:
        up.set(0)


async def watch_process(command: Sequence[str], stop: asyncio.Event) -> None:
    """Run ``command`` (a worker) until ``stop``, restarting it whenever it exits; then
    SIGTERM it, and kill it after 20 s."""
    process = subprocess.Popen(list(command))
    try:
        while not stop.is_set():
            if process.poll() is not None:
                log.error("worker exited, restarting", extra={"code": process.returncode})
                process = subprocess.Popen(list(command))
            else:
                metrics.beat()
            await asyncio.sleep(1.0)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, 20)
        except subprocess.TimeoutExpired:
            process.kill()
