"""Reading Prometheus metrics in tests and benchmarks: this process's registry (what
``/metrics`` would show), or another process's ``/metrics``."""

from __future__ import annotations

import urllib.request

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def sample(name: str, **labels: str) -> float:
    """The sample ``name`` with exactly ``labels`` (0 when not exported yet)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape(port: int) -> Samples:
    """Every sample a process serves on ``127.0.0.1:port/metrics``, by (name, sorted
    labels)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    return {(x.name, tuple(sorted(x.labels.items()))): x.value
            for family in text_string_to_metric_families(text) for x in family.samples}
