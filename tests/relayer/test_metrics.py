"""Every metric is declared once with a fixed label set, and the README's table says
exactly what the registry holds: names, types and labels."""

from __future__ import annotations

import re

from prometheus_client import REGISTRY

import attester.metrics
import bus.metrics
import relayer.metrics
import streams.metrics
from devnet.localnet import REPO

ROW = re.compile(r"^\| `(xmargin_\w+)` \| (\w+) \| ([^|]*) \| [^|]* \| [^|]* \|$")


def declared() -> dict[str, tuple[str, tuple[str, ...]]]:
    out = {}
    for module in (bus.metrics, relayer.metrics, streams.metrics, attester.metrics):
        for value in vars(module).values():
            name = getattr(value, "_name", None)
            if name is not None and hasattr(value, "_labelnames") and name.startswith("xmargin_"):
                kind = value._type
                shown = f"{name}_total" if kind == "counter" else name
                out[shown] = (kind, tuple(value._labelnames))
    return out


def test_the_readme_table_is_the_registry() -> None:
    rows = {}
    for line in (REPO / "README.md").read_text().splitlines():
        match = ROW.match(line)
        if match:
            labels = tuple(re.findall(r"`(\w+)`", match.group(3)))
            rows[match.group(1)] = (match.group(2), labels)
    assert rows == declared()


def test_every_declared_metric_is_registered_once() -> None:
    names = {m.name for m in REGISTRY.collect() if m.name.startswith("xmargin_")}
    assert {n.removesuffix("_total") for n in declared()} == names


def test_a_provider_is_named_by_host_and_port_never_by_its_url() -> None:
    assert relayer.metrics.provider_label(
        "https://eth-mainnet.example.com/v2/SECRETKEY?x=1") == "eth-mainnet.example.com"
    assert relayer.metrics.provider_label("http://127.0.0.1:8545/") == "127.0.0.1:8545"
