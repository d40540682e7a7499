"""Real vectors: execution-apis blocks and eth_getProof answers, mainnet headers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rlp

from proofs import header_from_rlp, header_from_rpc, verify_get_proof
from proofs.errors import HeaderHashMismatch
from proofs.keccak import keccak
from tests.conftest import CONFORMANCE, rpc_result

EXEC_APIS = CONFORMANCE / "execution-apis"
# Not-found and error vectors carry no block: they are not collected.
BLOCK_FILES = [p for p in sorted(EXEC_APIS.glob("*/eth_getBlockBy*/*.io")) if rpc_result(p)]
PROOF_FILES = sorted(EXEC_APIS.glob("*/eth_getProof/*.io"))
MAINNET = json.loads((CONFORMANCE / "headers/mainnet/portal_mainnet_headers.json").read_text())


@pytest.mark.parametrize("path", BLOCK_FILES, ids=lambda p: f"{p.parts[-3]}/{p.name}")
def test_execution_apis_block_hash_recomputes(path: Path) -> None:
    block = rpc_result(path)
    header = header_from_rpc(block)
    assert "0x" + header.hash.hex() == block["hash"]


@pytest.mark.parametrize("header", MAINNET["headers"], ids=lambda h: f"{h['fork']}-{h['number']}")
def test_mainnet_header_hashes_by_fork(header: dict) -> None:
    fields = {**header["header"], "hash": header["hash"]}
    rebuilt = header_from_rpc(fields)
    assert rebuilt.rlp.hex() == header["header_rlp"][2:]
    assert rebuilt.fork == HEADER_LAYOUT.get(header["fork"], header["fork"].lower())


# Mainnet forks that left the header layout as the previous one had it.
HEADER_LAYOUT = {
    **dict.fromkeys(["Frontier", "Homestead", "DAO", "TangerineWhistle", "SpuriousDragon",
                     "Byzantium", "Constantinople", "Petersburg", "Istanbul", "MuirGlacier",
                     "Berlin"], "frontier"),
    **dict.fromkeys(["London", "ArrowGlacier", "GrayGlacier", "Paris"], "london"),
}


def test_tampered_header_is_rejected_with_both_hashes() -> None:
    header = dict(MAINNET["headers"][-1]["header"], hash=MAINNET["headers"][-1]["hash"])
    header["gasUsed"] = hex(int(header["gasUsed"], 16) + 1)
    with pytest.raises(HeaderHashMismatch) as e:
        header_from_rpc(header)
    assert e.value.expected_hash.hex() == MAINNET["headers"][-1]["hash"][2:]
    assert e.value.actual_hash != e.value.expected_hash


def _state_root_for(proof_path: Path) -> bytes:
    """State root of the block the proof was taken at (by hash or ``latest``)."""
    request = json.loads(next(
        line[2:] for line in proof_path.read_text().splitlines() if line.startswith(">>")
    ))
    tag = request["params"][2] if len(request["params"]) > 2 else "latest"
    blocks = [rpc_result(p) for p in proof_path.parent.parent.glob("eth_getBlockBy*/*.io")]
    blocks = [b for b in blocks if b]
    for raw in proof_path.parent.parent.glob("debug_getRawHeader/*.io"):
        try:
            header = header_from_rlp(bytes.fromhex(rpc_result(raw)[2:]))
        except (ValueError, TypeError):
            continue  # the not-found vectors carry no header
        blocks.append({"hash": "0x" + header.hash.hex(), "number": hex(header.number),
                       "raw": header})
    if isinstance(tag, dict) or (isinstance(tag, str) and len(tag) == 66):
        wanted = tag["blockHash"] if isinstance(tag, dict) else tag
        block = next(b for b in blocks if b["hash"] == wanted)
    elif tag == "latest":
        block = max(blocks, key=lambda b: int(b["number"], 16))
    else:
        block = next(b for b in blocks if b["number"] == tag)
    return block["raw"].state_root if "raw" in block else header_from_rpc(block).state_root


@pytest.mark.parametrize("path", PROOF_FILES, ids=lambda p: f"{p.parts[-3]}/{p.name}")
def test_execution_apis_get_proof_verifies(path: Path) -> None:
    answer = rpc_result(path)
    verified = verify_get_proof(_state_root_for(path), answer)
    assert verified.account.balance == int(answer["balance"], 16)
    for entry in answer["storageProof"]:
        assert verified.storage[int(entry["key"], 16)] == int(entry["value"], 16)


RAW_HEADER_FILES = [p for p in sorted(EXEC_APIS.glob("*/debug_getRawHeader/*.io"))
                    if rpc_result(p)]


def chain_headers(chain_dir: Path) -> dict[int, bytes]:
    """Number → header RLP of every block in the vector chain's ``chain.rlp`` (blocks
    1 onwards, concatenated RLP items whose first element is the header)."""
    data = (chain_dir / "chain.rlp").read_bytes()
    headers, pos = {}, 0
    while pos < len(data):
        consumed = rlp.codec.consume_item(data, pos)
        item, pos = consumed[0], consumed[-1]
        headers[int.from_bytes(item[0][8], "big")] = rlp.encode(item[0])
    return headers


@pytest.mark.parametrize("path", RAW_HEADER_FILES, ids=lambda p: f"{p.parts[-3]}/{p.name}")
def test_raw_header_matches_the_chain_and_its_json_block(path: Path) -> None:
    raw = bytes.fromhex(rpc_result(path)[2:])
    header = header_from_rlp(raw)
    same = [rpc_result(p) for p in path.parent.parent.glob("eth_getBlockBy*/*.io")]
    expected = [b["hash"] for b in same if b and int(b["number"], 16) == header.number]
    chain = chain_headers(path.parent.parent)
    if header.number in chain:
        assert raw == chain[header.number]
        expected.append("0x" + keccak(chain[header.number]).hex())
    assert expected, f"nothing to compare block {header.number}'s header with"
    assert set(expected) == {"0x" + header.hash.hex()}


@pytest.mark.parametrize("header", MAINNET["headers"], ids=lambda h: f"{h['fork']}-{h['number']}")
def test_mainnet_raw_header_rlp(header: dict) -> None:
    decoded = header_from_rlp(bytes.fromhex(header["header_rlp"][2:]),
                              expected_hash=bytes.fromhex(header["hash"][2:]))
    assert decoded.number == header["number"]
