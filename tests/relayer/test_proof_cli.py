"""``xmargin proof check`` on real vectors: values on success, one typed line on failure."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tests.conftest import CONFORMANCE
from xmargin.cli import app

CHAIN = CONFORMANCE / "execution-apis/prague-chain_9772380"
runner = CliRunner()


def response(path: Path) -> dict:
    line = next(x for x in path.read_text().splitlines() if x.startswith("<<"))
    return json.loads(line[2:])


def write(tmp_path: Path, name: str, document: object) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return path


def check(tmp_path: Path, header: object, proof: object):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["proof", "check", "--header", str(write(tmp_path, "h.json", header)),
                               "--proof", str(write(tmp_path, "p.json", proof))])


def test_check_prints_verified_values_for_whole_responses_and_bare_results(tmp_path: Path) -> None:
    header = response(CHAIN / "eth_getBlockByNumber/get-latest.io")
    proof = response(CHAIN / "eth_getProof/get-account-proof-with-storage.io")
    for h, p in [(header, proof), (header["result"], proof["result"])]:
        result = check(tmp_path, h, p)
        assert result.exit_code == 0, result.output
        out = json.loads(result.stdout)
        assert out["block_hash"] == header["result"]["hash"]
        assert out["storage"] == {"0x0": 42}
        assert out["balance"] == int(proof["result"]["balance"], 16)


def test_tampered_node_exits_non_zero_naming_the_node_and_hashes(tmp_path: Path) -> None:
    header = response(CHAIN / "eth_getBlockByNumber/get-latest.io")
    proof = response(CHAIN / "eth_getProof/get-account-proof-with-storage.io")
    nodes = proof["result"]["storageProof"][0]["proof"]
    nodes[1] = nodes[1][:-2] + ("00" if nodes[1][-2:] != "00" else "01")
    result = check(tmp_path, header, proof)
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert "\n" not in line
    assert line.startswith("NodeHashMismatch: storage proof of slot 0x0 node 1: expected hash 0x")


def test_proof_from_another_block_is_a_root_mismatch(tmp_path: Path) -> None:
    header = response(CHAIN / "eth_getBlockByNumber/get-genesis.io")
    proof = response(CHAIN / "eth_getProof/get-account-proof-with-storage.io")
    result = check(tmp_path, header, proof)
    assert result.exit_code == 1
    assert result.stderr.startswith("NodeHashMismatch: account proof node 0")


def test_lying_value_and_bad_header_are_typed_errors(tmp_path: Path) -> None:
    header = response(CHAIN / "eth_getBlockByNumber/get-latest.io")
    proof = response(CHAIN / "eth_getProof/get-account-proof-with-storage.io")
    proof["result"]["storageProof"][0]["value"] = "0x2b"
    assert check(tmp_path, header, proof).stderr.startswith(
        "ValueMismatch: slot 0x0: claimed 0x2b, proven 0x2a")
    header["result"]["gasUsed"] = "0x1"
    assert check(tmp_path, header, proof).stderr.startswith("HeaderHashMismatch: header 45")
    assert check(tmp_path, {"jsonrpc": "2.0", "error": {"code": -1}}, proof).exit_code == 1
