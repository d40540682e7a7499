"""Configuration checked against a real chain: a chain id the RPC does not report."""

from __future__ import annotations

from pathlib import Path

import pytest

from devnet.localnet import LocalNet
from tests.relayer.test_config import assert_names, run_node, write_config

pytestmark = pytest.mark.integration


def test_unknown_chain_id_names_chain_id(tmp_path: Path, localnet: LocalNet) -> None:
    url = localnet.chain(41020, block_time_s=None)
    assert_names(run_node(write_config(tmp_path, url, chain_id=99999)), "chains.0.chain_id")
