"""Shared fixtures: the conformance data in ../shared, and real local components.

Integration fixtures start a real broker (Tansu, then Apache Kafka) and real anvil chains
on free ports of 127.0.0.1 and always stop them, whatever the tests do.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devnet.kafka import kafka_cluster
from devnet.localnet import REPO, LocalNet
from relayer.errors import ToolMissing
from tests.support.tools import missing

SHARED = REPO.parent / "shared"
CONFORMANCE = SHARED / "data" / "conformance"


def rpc_result(path: Path) -> Any:
    """The ``result`` of the response line (``<<``) of an execution-apis ``.io`` file
    (``None`` for an error response)."""
    for line in path.read_text().splitlines():
        if line.startswith("<<"):
            return json.loads(line[2:]).get("result")
    raise ValueError(f"{path} has no response line")


@pytest.fixture(scope="session")
def conformance() -> Path:
    if not CONFORMANCE.is_dir():
        pytest.fail(f"conformance data missing at {CONFORMANCE}")
    return CONFORMANCE


@pytest.fixture(scope="module")
def localnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNet]:
    with LocalNet(tmp_path_factory.mktemp("localnet")) as net:
        yield net


# The brokers every integration test runs on: Tansu, then Apache Kafka (KRaft, one
# node). XMARGIN_TEST_BROKERS=tansu (or kafka) runs one half.
BROKERS = tuple(os.environ.get("XMARGIN_TEST_BROKERS", "tansu,kafka").split(","))


@pytest.fixture(scope="module", params=BROKERS)
def broker(request: pytest.FixtureRequest, localnet: LocalNet) -> str:
    """A Kafka-protocol broker: Tansu, then (when asked for) Apache Kafka in KRaft mode,
    every integration test on each. Without Java or the Kafka jars the Kafka half is
    skipped, saying how to get them, except under CI=true, where that fails."""
    if request.param == "tansu":
        return localnet.broker()
    try:
        return kafka_cluster(localnet, 1)[0].bootstrap
    except ToolMissing as e:
        missing(f"Kafka half: {e}")


@pytest.fixture(scope="module")
def chain_urls(localnet: LocalNet) -> list[str]:
    return [localnet.chain(41001), localnet.chain(41002)]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The integration modules first. ``make test`` hands whole modules to its two
    processes in collection order (``--dist loadfile``): the long ones starting first
    and the short unit modules filling the end, both processes finish together."""
    items.sort(key=lambda item: 0 if "integration" in item.path.parts else 1)
