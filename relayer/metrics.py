"""The node's counters and gauges, written in the Prometheus text format.

One file (``state_dir/metrics.prom``), rewritten atomically on every change, so a
node_exporter textfile collector, an alert rule or an operator with ``cat`` sees the
same figures: reorgs and their depth, chain halts, listener heights.
"""

from __future__ import annotations

from pathlib import Path

from relayer.statedir import write_atomically

Labels = dict[str, str]


class Metrics:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    def set(self, name: str, value: float, labels: Labels | None = None) -> None:
        self.values[(name, tuple(sorted((labels or {}).items())))] = float(value)
        self.write()

    def inc(self, name: str, labels: Labels | None = None, by: float = 1.0) -> None:
        key = (name, tuple(sorted((labels or {}).items())))
        self.values[key] = self.values.get(key, 0.0) + by
        self.write()

    def get(self, name: str, labels: Labels | None = None) -> float:
        return self.values.get((name, tuple(sorted((labels or {}).items()))), 0.0)

    def text(self) -> str:
        lines = []
        for (name, labels), value in sorted(self.values.items()):
            rendered = ",".join(f'{k}="{v}"' for k, v in labels)
            lines.append(f"{name}{{{rendered}}} {value:g}" if rendered else f"{name} {value:g}")
        return "\n".join(lines) + "\n"

    def write(self) -> None:
        write_atomically(self.path, self.text())
