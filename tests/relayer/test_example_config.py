"""The example configuration shipped for operators loads as it is."""

from __future__ import annotations

from devnet.localnet import REPO
from xmargin.config import load_settings


def test_example_config_is_valid() -> None:
    settings = load_settings(REPO / "deploy" / "node.example.toml")
    assert [c.chain_id for c in settings.chains] == [41001, 41002]
    assert settings.signer_threshold == 2 and len(settings.signers) == 3
    assert {t.chain_id for t in settings.stream_settings().targets} == {41001, 41002}
