"""Log lines as a constant message followed by ``key=value`` fields."""

from __future__ import annotations

import logging
import sys

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class FieldsFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if fields:
            line += " " + " ".join(f"{k}={v}" for k, v in sorted(fields.items()))
        return line


class Repeats(logging.Filter):
    """Lets one record per logger and message template through per ``window_s``, for
    the loggers named by ``prefixes``; the next one let through carries ``suppressed``,
    the count held back. With a broker gone, aiokafka logs every reconnect attempt of
    every client, over a thousand lines a minute."""

    def __init__(self, prefixes: tuple[str, ...], window_s: float = 60.0) -> None:
        super().__init__()
        self.prefixes = prefixes
        self.window_s = window_s
        self.seen: dict[tuple[str, str], tuple[float, int]] = {}  # last let through, held

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefixes):
            return True
        key = (record.name, str(record.msg))
        last, held = self.seen.get(key, (float("-inf"), 0))
        if record.created - last < self.window_s:
            self.seen[key] = (last, held + 1)
            return False
        if held:
            record.suppressed = held
        self.seen[key] = (record.created, 0)
        return True


def configure(level: str = "INFO") -> None:
    # Logs go to stdout; stderr is kept for the one-line errors that end the process.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(FieldsFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(Repeats(("aiokafka",)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiokafka", "web3"):
        logging.getLogger(noisy).setLevel("WARNING")
