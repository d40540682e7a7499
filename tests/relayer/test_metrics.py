"""The node's metrics file: declared names and labels only, and values to the digit."""

from __future__ import annotations

from pathlib import Path

import pytest

from relayer.metrics import Metrics


def test_heights_keep_every_digit(tmp_path: Path) -> None:
    metrics = Metrics(tmp_path / "metrics.prom")
    metrics.set("xmargin_listener_head", 21_345_678, {"chain": "a"})
    metrics.set("xmargin_last_reorg_depth", 0.5, {"chain": "a"})
    text = (tmp_path / "metrics.prom").read_text()
    assert 'xmargin_listener_head{chain="a"} 21345678\n' in text
    assert 'xmargin_last_reorg_depth{chain="a"} 0.5\n' in text


def test_an_undeclared_metric_or_label_set_is_refused(tmp_path: Path) -> None:
    metrics = Metrics(tmp_path / "metrics.prom")
    with pytest.raises(KeyError, match="not declared"):
        metrics.inc("xmargin_surprise_total", {"chain": "a"})
    with pytest.raises(KeyError, match="labels"):
        metrics.set("xmargin_listener_head", 1, {"chain": "a", "provider": "p"})
