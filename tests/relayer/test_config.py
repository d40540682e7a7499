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
[[chains]]
name = "a"
chain_id = {chain_id}
rpc_urls = ["{rpc_url}"]
oracle = "{ORACLE}"
submitter = {{ keystore = "{store}", password_file = "{keys.password_file}" }}
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


def test_missing_keystore_names_the_submitter(tmp_path: Path) -> None:
    result = run_node(write_config(tmp_path, "http://127.0.0.1:1",
                                   keystore=tmp_path / "missing.json"))
    assert_names(result, "chains.0.submitter.keystore")


def signer_tables(tmp_path: Path, n: int) -> str:
    stores = [write_keystore(Account.create(), tmp_path / "keys", f"s{i}", "pw") for i in range(n)]
    return "".join(f'[[signers]]\nkeystore = "{k.keystore}"\npassword_file = "{k.password_file}"\n'
                   for k in stores)


def test_a_node_config_with_two_signer_keys_is_refused_naming_the_field(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:1")
    config.write_text(signer_tables(tmp_path, 2) + config.read_text())
    result = run_node(config)
    assert_names(result, "signers")
    assert "2 signer keys in one process" in result.stderr


def test_a_node_holds_no_signer_key_and_no_threshold_of_its_own(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:1")
    body = config.read_text()
    config.write_text(signer_tables(tmp_path, 1) + body)
    assert_names(run_node(config), "signers")
    config.write_text("signer_threshold = 2\n" + body)
    assert_names(run_node(config), "signer_threshold")


def attester_config(tmp_path: Path, extra: str = "", signer: str | None = None,
                    rpc: str = '["http://127.0.0.1:1"]') -> Path:
    keys = write_keystore(Account.create(), tmp_path / "keys", "attester", "pw")
    signer = signer if signer is not None else (
        f'[signer]\nkeystore = "{keys.keystore}"\npassword_file = "{keys.password_file}"\n')
    config = tmp_path / "attester.toml"
    config.write_text(f"""{extra}
[kafka]
bootstrap = "127.0.0.1:{free_port()}"
{signer}
[[chains]]
name = "a"
chain_id = 41001
rpc_urls = {rpc}
oracle = "{ORACLE}"
""")
    return config


def run_attester(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "xmargin.cli", "attester", "run", "--config",
                           str(config)], capture_output=True, text=True, timeout=60)


def test_an_attester_holds_exactly_one_signer_key(tmp_path: Path) -> None:
    two = run_attester(attester_config(tmp_path, signer=signer_tables(tmp_path, 2)))
    assert_names(two, "signers")
    assert "2 signer keys in one process" in two.stderr
    assert_names(run_attester(attester_config(tmp_path, signer="")), "signer")


def test_an_attester_config_names_its_bad_fields(tmp_path: Path) -> None:
    quorum = attester_config(tmp_path, rpc='["http://127.0.0.1:1"]')
    quorum.write_text(quorum.read_text() + "quorum = 2\n")
    assert_names(run_attester(quorum), "chains.0")
    twice = attester_config(tmp_path, rpc='["http://127.0.0.1:1", "http://127.0.0.1:1"]')
    assert_names(run_attester(twice), "chains.0")
    unreachable = attester_config(tmp_path, rpc=f'["http://127.0.0.1:{free_port()}"]')
    assert_names(run_attester(unreachable), "chains.0.rpc_urls")
    missing = attester_config(tmp_path, signer='[signer]\nkeystore = "nope.json"\n'
                                               'password_file = "nope"\n')
    assert_names(run_attester(missing), "signer.keystore")


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
