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


def configure(level: str = "INFO") -> None:
    # Logs go to stdout; stderr is kept for the one-line errors that end the process.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(FieldsFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiokafka", "web3"):
        logging.getLogger(noisy).setLevel("WARNING")
