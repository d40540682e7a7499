"""The node's counters and gauges, declared once here with their fixed label sets, and
written in the Prometheus text format.

One file (``StateDir.metrics``), rewritten atomically on every change, so a
node_exporter textfile collector, an alert rule or an operator with ``cat`` sees the
same figures: reorgs and their depth, chain halts, listener heights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from relayer.statedir import write_atomically

Labels = dict[str, str]


@dataclass(frozen=True)
class Declared:
    kind: str  # "gauge" | "counter"
    labels: tuple[str, ...]
    meaning: str


DECLARED = {
    "xmargin_chain_halted": Declared("gauge", ("chain",), "1 while the chain is halted"),
    "xmargin_chain_halts_total": Declared("counter", ("chain",), "halts of the chain"),
    "xmargin_reorgs_total": Declared("counter", ("chain",), "reorgs walked back"),
    "xmargin_last_reorg_depth": Declared("gauge", ("chain",), "blocks orphaned by the last"),
    "xmargin_listener_head": Declared("gauge", ("chain",), "newest block published"),
    "xmargin_listener_final": Declared("gauge", ("chain",), "newest final block handled"),
    "xmargin_ws_connected": Declared("gauge", ("chain",), "1 while the head feed is up"),
}


def _key(name: str, labels: Labels | None) -> tuple[str, tuple[tuple[str, str], ...]]:
    declared = DECLARED.get(name)
    if declared is None:
        raise KeyError(f"metric {name} is not declared in relayer.metrics")
    given = tuple(sorted((labels or {}).items()))
    if tuple(k for k, _ in given) != tuple(sorted(declared.labels)):
        raise KeyError(f"metric {name}: labels {[k for k, _ in given]}, "
                       f"declared {list(declared.labels)}")
    return name, given


class Metrics:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    def set(self, name: str, value: float, labels: Labels | None = None) -> None:
        self.values[_key(name, labels)] = float(value)
        self.write()

    def inc(self, name: str, labels: Labels | None = None, by: float = 1.0) -> None:
        key = _key(name, labels)
        self.values[key] = self.values.get(key, 0.0) + by
        self.write()

    def get(self, name: str, labels: Labels | None = None) -> float:
        return self.values.get(_key(name, labels), 0.0)

    def text(self) -> str:
        lines = []
        for (name, labels), value in sorted(self.values.items()):
            rendered = ",".join(f'{k}="{v}"' for k, v in labels)
            # Block heights are integers: every digit, never 2.13457e+07.
            shown = str(int(value)) if value.is_integer() else repr(value)
            lines.append(f"{name}{{{rendered}}} {shown}" if rendered else f"{name} {shown}")
        return "\n".join(lines) + "\n"

    def write(self) -> None:
        write_atomically(self.path, self.text())
