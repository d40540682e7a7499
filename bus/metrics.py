"""What every xmargin process exports to Prometheus, whichever side it is on: records
consumed and dead-lettered, and the liveness of each supervised task; and the one way a
process serves its metrics over HTTP.

Metrics are declared once, at import, in prometheus-client's default registry, each
with a fixed label set; the node's own are in ``relayer.metrics`` and the workers' in
``streams.metrics``. A label's values are a fixed set too: a dead letter's ``reason``
is one of ``DEAD_LETTER_KINDS``, never the free-text reason the dead-letter record
carries.
"""

from __future__ import annotations

import contextvars
import time

from prometheus_client import Counter, Gauge, start_http_server

RECORDS_CONSUMED = Counter(
    "xmargin_records_consumed", "records read from a topic (valid or not)", ["topic"])
DEAD_LETTERS = Counter(
    "xmargin_dead_letters", "records sent to a dead-letter topic, by the topic they were "
    "refused for and the kind of reason", ["topic", "reason"])
TASK_PROGRESS = Gauge(
    "xmargin_task_last_progress_timestamp_seconds", "unix time a supervised task last "
    "made progress (a poll, a batch, a tick)", ["task"])
TASK_RESTARTS = Counter(
    "xmargin_task_restarts", "times a supervised task failed and was restarted", ["task"])
TASK_UP = Gauge("xmargin_task_up", "1 while a supervised task runs, 0 once it stopped "
                "or halted", ["task"])

# The supervised task the current asyncio task runs for (set by the supervisor; asyncio
# tasks a task creates inherit it).
current_task: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "xmargin_task", default=None)


LOG_VANISHED = Gauge("xmargin_log_vanished", "1 once this process found that the log no "
                     "longer holds the epoch it built on (an incident file names it)")


def beat() -> None:
    """The current supervised task made progress (no-op outside one)."""
    name = current_task.get()
    if name is not None:
        TASK_PROGRESS.labels(task=name).set(time.time())


# A dead letter's ``reason`` label: what kind of refusal it was.
DEAD_LETTER_KINDS = ("empty", "malformed", "schema", "bundle", "log_decode", "proof",
                     "digest", "unknown_chain")


def serve(port: int, host: str = "127.0.0.1") -> int | None:
    """Serve the default registry on ``host:port`` (port 0: not at all) from a thread;
    the port bound."""
    if port == 0:
        return None
    server, _ = start_http_server(port, addr=host)
    return int(server.server_port)
