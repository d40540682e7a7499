"""Header hashing on every other real vector: ethereumjs mainnet JSON-RPC blocks, the
ethereum/tests multi-fork chain and the mainnet genesis."""

from __future__ import annotations

import itertools
import json

import pytest
import rlp

from proofs import header_from_rlp, header_from_rpc
from proofs.errors import MalformedInput
from tests.conftest import CONFORMANCE

HEADERS = CONFORMANCE / "headers"
RPC_FILES = ["alchemy14151203.json", "infura15571241.json", "infura2000004wotxns.json",
             "testdata-from-rpc.json", "testdata-from-rpc-with-uncles.json",
             "testdata-from-rpc-with-uncles_uncle-block-data.json"]
MULTIFORK = json.loads((HEADERS / "blockchain-tests/SimpleTx_multifork.json").read_text())


@pytest.mark.parametrize("name", RPC_FILES)
def test_real_mainnet_rpc_block_hashes(name: str) -> None:
    block = json.loads((HEADERS / "mainnet/ethereumjs-rpc" / name).read_text())
    assert "0x" + header_from_rpc(block).hash.hex() == block["hash"]


def test_first_mainnet_blocks_chain_by_parent_hash() -> None:
    blocks = json.loads((HEADERS / "mainnet/ethereumjs-rpc/blocks_mainnet.json").read_text())
    headers = [header_from_rpc(b["header"]) for b in blocks]
    assert headers[0].hash.hex().startswith("88e96d45")
    for parent, child in itertools.pairwise(headers):
        assert child.parent_hash == parent.hash


@pytest.mark.parametrize("test", sorted(MULTIFORK))
def test_ethereum_tests_chain_per_fork(test: str) -> None:
    case = MULTIFORK[test]
    genesis = header_from_rpc(case["genesisBlockHeader"])
    block = header_from_rpc(case["blocks"][0]["blockHeader"])
    assert block.parent_hash == genesis.hash
    assert "0x" + block.hash.hex() == case["lastblockhash"]
    raw_header = rlp.encode(rlp.decode(bytes.fromhex(case["blocks"][0]["rlp"][2:]))[0])
    assert header_from_rlp(raw_header, expected_hash=block.hash).number == block.number


def test_mainnet_genesis() -> None:
    data = json.loads((HEADERS / "mainnet/genesishashestest.json").read_text())
    header_rlp = rlp.encode(rlp.decode(bytes.fromhex(data["genesis_rlp_hex"]))[0])
    header = header_from_rlp(header_rlp)
    assert header.hash.hex() == data["genesis_hash"].removeprefix("0x")
    assert header.state_root.hex() == data["genesis_state_root"].removeprefix("0x")


def test_later_fork_field_without_earlier_ones_is_refused() -> None:
    block = json.loads((HEADERS / "mainnet/ethereumjs-rpc/infura15571241.json").read_text())
    del block["baseFeePerGas"]
    block["withdrawalsRoot"] = "0x" + "00" * 32
    with pytest.raises(MalformedInput, match="shanghai"):
        header_from_rpc(block)


def test_raw_header_with_unknown_field_count_is_refused() -> None:
    with pytest.raises(MalformedInput, match="12 fields"):
        header_from_rlp(rlp.encode([b"\x01"] * 12))
