"""Shared fixtures: the conformance data in ../shared, and real local components.

Integration fixtures start a real Tansu broker and real anvil chains on free ports of
127.0.0.1 and always stop them, whatever the tests do.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devnet.localnet import REPO, LocalNet

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


@pytest.fixture(scope="module")
def broker(localnet: LocalNet) -> str:
    return localnet.broker()


@pytest.fixture(scope="module")
def chain_urls(localnet: LocalNet) -> list[str]:
    return [localnet.chain(41001), localnet.chain(41002)]
