"""The example configuration shipped for operators loads as it is, and documents every
key of the settings tree (set, or commented out with its default)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from attester.settings import AttesterChain, AttesterSettings
from devnet.localnet import REPO
from relayer.settings import ChainSettings, KafkaSettings
from streams.settings import StreamSettings
from xmargin.config import NodeSettings, load_attester_settings, load_settings

EXAMPLE = REPO / "deploy" / "node.example.toml"
ATTESTER_EXAMPLE = REPO / "deploy" / "attester.example.toml"
# Set by the node itself, not by an operator: one attestation target per chain.
DERIVED = {("streams", "targets")}


def test_example_config_is_valid() -> None:
    settings = load_settings(EXAMPLE)
    assert [c.chain_id for c in settings.chains] == [41001, 41002]
    assert {t.chain_id for t in settings.stream_settings().targets} == {41001, 41002}


def keys_of(model: type[BaseModel]) -> set[str]:
    return set(model.model_fields)


def documented(section: str, example: Path = EXAMPLE) -> set[str]:
    """Keys set in ``section`` of the example (its first table of that name), or
    commented out there as ``# key = …``."""
    text = example.read_text()
    parsed: Any = tomllib.loads(text)
    table = parsed if not section else parsed[section]
    table = table[0] if isinstance(table, list) else table
    keys = set(table)
    header = re.compile(r"^\[+" + re.escape(section) + r"\]+\s*$", re.M) if section else None
    start = header.search(text).end() if header else 0  # type: ignore[union-attr]
    following = re.search(r"^\[", text[start:], re.M) if section else re.search(
        r"^\[", text, re.M)
    body = text[start:start + following.start()] if following else text[start:]
    keys |= set(re.findall(r"^#\s*([a-z_]+)\s*=", body, re.M))
    return keys


def test_every_settings_key_is_documented_in_the_example() -> None:
    expected = {
        "": keys_of(NodeSettings) - {"kafka", "streams", "chains"},
        "kafka": keys_of(KafkaSettings),
        "streams": keys_of(StreamSettings) - {k for s, k in DERIVED if s == "streams"},
        "chains": keys_of(ChainSettings),
    }
    missing = {section: sorted(keys - documented(section))
               for section, keys in expected.items() if keys - documented(section)}
    assert not missing, f"keys missing from {EXAMPLE.name}: {missing}"


def test_the_attester_example_loads_and_documents_every_key() -> None:
    settings = load_attester_settings(ATTESTER_EXAMPLE)
    assert [c.quorum for c in settings.chains] == [2, 2]
    expected = {
        "": keys_of(AttesterSettings) - {"kafka", "streams", "chains", "signer"},
        "kafka": keys_of(KafkaSettings),
        "signer": {"keystore", "password_file"},
        "chains": keys_of(AttesterChain),
    }
    missing = {section: sorted(keys - documented(section, ATTESTER_EXAMPLE))
               for section, keys in expected.items()
               if keys - documented(section, ATTESTER_EXAMPLE)}
    assert not missing, f"keys missing from {ATTESTER_EXAMPLE.name}: {missing}"
