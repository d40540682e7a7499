"""The alert rules and the dashboard in deploy/: valid (promtool, where installed), and
naming only metrics the processes declare."""

from __future__ import annotations

import json
import re
import subprocess

import yaml

from devnet.localnet import REPO
from tests.relayer.test_metrics import declared
from tests.support.tools import needed

PROMETHEUS = REPO / "deploy" / "prometheus"
DASHBOARD = REPO / "deploy" / "grafana" / "xmargin.json"
HISTOGRAM = re.compile(r"_(bucket|count|sum)$")


def names_in(expr: str) -> set[str]:
    return {HISTOGRAM.sub("", n) for n in re.findall(r"\bxmargin_\w+", expr)}


def test_the_alerts_an_operator_needs_name_declared_metrics() -> None:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"][0]["rules"]
    alerts = {r["alert"]: r["expr"] for r in rules}
    assert {"XmarginChainHalted", "XmarginListenerBehind", "XmarginSubmitterDeadLetters",
            "XmarginSendingBalanceLow", "XmarginWorkerLagRising",
            "XmarginNoAttestation"} <= set(alerts)
    known = set(declared())
    for name, expr in alerts.items():
        assert names_in(expr) and names_in(expr) <= known, name


def test_every_dashboard_panel_queries_declared_metrics() -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert len(panels) >= 20
    known = set(declared())
    for panel in panels:
        for target in panel["targets"]:
            assert names_in(target["expr"]) <= known and names_in(target["expr"]), panel["title"]


def test_promtool_accepts_the_rules_and_the_config() -> None:
    promtool = needed("promtool", "`make promtool` installs Debian's prometheus package")
    for what, path in (("rules", "alerts.yml"), ("config", "prometheus.yml")):
        done = subprocess.run([promtool, "check", what, str(PROMETHEUS / path)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
