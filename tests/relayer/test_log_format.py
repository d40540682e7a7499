"""Node log lines: a reconnecting client's repeats are held back, and counted."""

from __future__ import annotations

import logging

from relayer.node.log_format import Repeats


def record(name: str, msg: str, created: float, *args: object) -> logging.LogRecord:
    r = logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)
    r.created = created
    return r


def test_one_line_per_template_per_window_then_the_count_held_back() -> None:
    repeats = Repeats(("aiokafka",), window_s=60.0)
    template = 'Unable connect to node with id %s: %s'
    first = record("aiokafka.client", template, 0.0, 2, "refused")
    assert repeats.filter(first) and not hasattr(first, "suppressed")
    assert [repeats.filter(record("aiokafka.client", template, t, 2, "refused"))
            for t in (1.0, 30.0, 59.9)] == [False, False, False]
    # Another template, or another logger, is its own line.
    assert repeats.filter(record("aiokafka.client", "Unable connect to %r", 2.0, "x"))
    assert repeats.filter(record("aiokafka.conn", template, 2.0, 2, "refused"))
    after = record("aiokafka.client", template, 60.0, 3, "refused")
    assert repeats.filter(after) and after.suppressed == 3
    assert not repeats.filter(record("aiokafka.client", template, 61.0, 3, "refused"))


def test_other_loggers_pass_untouched() -> None:
    repeats = Repeats(("aiokafka",))
    assert all(repeats.filter(record("relayer.delivery.sending", "transaction sent", t))
               for t in (0.0, 0.1, 0.2))
