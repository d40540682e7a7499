"""A misconfigured node exits non-zero with one line naming the field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account

from devnet.localnet import free_port
from relayer.delivery.signing import write_keystore
from relayer.errors import ConfigError
from xmargin.config import load_settings

ORACLE = "0x" + "aa" * 20


def write_config(tmp_path: Path, rpc_url: str, chain_id: int = 41001,
                 keystore: Path | None = None) -> Path:
    keys = write_keystore(Account.create(), tmp_path / "keys", "k", "pw")
    store = keystore or keys.keystore
    config = tmp_path / "node.toml"
    config.write_text(f"""
[kafka]
bootstrap = "127.0.0.1:{free_port()}"
[[signers]]
keystore = "{store}"
password_file = "{keys.password_file}"
[[chains]]
name = "a"
chain_id = {chain_id}
rpc_urls = ["{rpc_url}"]
oracle = "{ORACLE}"
submitter = {{ keystore = "{keys.keystore}", password_file = "{keys.password_file}" }}
""")
    return config


def run_node(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "xmargin.cli", "node", "run", "--config",
                           str(config)], capture_output=True, text=True, timeout=60)


def assert_names(result: subprocess.CompletedProcess[str], field: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"config error: {field}")


def test_unreachable_rpc_names_rpc_urls(tmp_path: Path) -> None:
    result = run_node(write_config(tmp_path, f"http://127.0.0.1:{free_port()}"))
    assert_names(result, "chains.0.rpc_urls")


def test_missing_keystore_names_the_signer(tmp_path: Path) -> None:
    result = run_node(write_config(tmp_path, "http://127.0.0.1:1",
                                   keystore=tmp_path / "missing.json"))
    assert_names(result, "signers.0.keystore")


def test_bad_value_names_the_field(tmp_path: Path) -> None:
    config = write_config(tmp_path, "not-a-url")
    assert_names(run_node(config), "chains.0.rpc_urls.0")


def test_missing_file_and_env_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="config"):
        load_settings(tmp_path / "nope.toml")
    config = write_config(tmp_path, "http://127.0.0.1:8545")
    monkeypatch.setenv("XMARGIN__KAFKA__BOOTSTRAP", "10.0.0.1:1234")
    assert load_settings(config).kafka.bootstrap == "10.0.0.1:1234"
    assert load_settings(config, kafka={"bootstrap": "cli:1"}).kafka.bootstrap == "cli:1"


def test_a_wrong_keystore_password_names_the_field(tmp_path: Path) -> None:
    from eth_account import Account

    from relayer.delivery.signing import load_keystore, write_keystore
    from relayer.errors import ConfigError

    account = Account.create()
    settings = write_keystore(account, tmp_path, "signer", "right")
    assert load_keystore(settings, "signers.0").address == account.address
    settings.password_file.write_text("wrong")
    with pytest.raises(ConfigError) as refused:
        load_keystore(settings, "signers.0")
    assert refused.value.field == "signers.0.keystore"
    assert "cannot decrypt" in refused.value.message
    assert account.key.hex().removeprefix("0x") not in str(refused.value)


def test_deploy_to_an_unreachable_chain_exits_2_naming_the_option(tmp_path: Path) -> None:
    import sys

    done = subprocess.run([sys.executable, "-m", "xmargin.cli", "deploy", "--out",
                           str(tmp_path / "etc"), "--rpc-url", "http://127.0.0.1:1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("error: --rpc-url: cannot deploy: ")
