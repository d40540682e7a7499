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


def test_the_deployment_step_writes_a_config_the_node_loads(tmp_path: Path,
                                                           localnet: LocalNet) -> None:
    # docker-compose's `deploy` service, on a real chain.
    import subprocess
    import sys

    from xmargin.config import load_attester_settings, load_settings

    url = localnet.chain(41021, block_time_s=None)
    done = subprocess.run([sys.executable, "-m", "xmargin.cli", "deploy", "--out",
                           str(tmp_path / "etc"), "--kafka", "kafka:9092", "--rpc-url", url],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    settings = load_settings(tmp_path / "etc" / "node.toml")
    assert [c.chain_id for c in settings.chains] == [41021]
    assert settings.kafka.bootstrap == "kafka:9092"
    # The node holds no signer key: each attester's config holds one, and its own chains.
    attesters = sorted((tmp_path / "etc").glob("attester-*.toml"))
    assert len(attesters) == 3
    for path in attesters:
        attester = load_attester_settings(path)
        assert attester.signer.keystore.is_file()
        assert attester.kafka.bootstrap == "kafka:9092"
        assert [c.chain_id for c in attester.chains] == [41021]
