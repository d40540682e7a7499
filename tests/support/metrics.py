"""Reading this process's Prometheus registry in tests (what ``/metrics`` would show)."""

from __future__ import annotations

from prometheus_client import REGISTRY


def sample(name: str, **labels: str) -> float:
    """The sample ``name`` with exactly ``labels`` (0 when not exported yet)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0
