"""Storage tries of a chosen shape on a real anvil chain, and their eth_getProof answers
(shared by the proof tests and ``benchmarks/bench_proofs.py``)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import vyper
from web3 import HTTPProvider, Web3

from devnet.deploy import anvil_account, transact
from proofs import vyper_mapping_slot

SOURCE = Path(__file__).with_name("StorageFiller.vy")


@cache
def _compiled() -> dict[str, Any]:
    return dict(vyper.compile_code(SOURCE.read_text(), output_formats=["abi", "bytecode"]))


class StorageFiller:
    def __init__(self, rpc_url: str) -> None:
        self.w3 = Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": 120}))
        self.account = anvil_account(5)
        c = _compiled()
        factory = self.w3.eth.contract(abi=c["abi"], bytecode=c["bytecode"])
        receipt = transact(self.w3, self.account, factory.constructor())
        self.address = receipt["contractAddress"]
        self.contract = self.w3.eth.contract(address=self.address, abi=c["abi"])

    def fill(self, n_slots: int, seed: int = 1, batch: int = 500) -> int:
        """Write keys 0..n_slots-1; returns the block number after the last write."""
        block = 0
        for start in range(0, n_slots, batch):
            count = min(batch, n_slots - start)
            call = self.contract.functions.fill(start, count, seed)
            block = transact(self.w3, self.account, call)["blockNumber"]
        return int(block)

    def put(self, values: dict[int, int]) -> int:
        call = self.contract.functions.put(list(values), list(values.values()))
        return int(transact(self.w3, self.account, call)["blockNumber"])

    @staticmethod
    def slot(key: int) -> int:
        return vyper_mapping_slot(0, key)

    def proof(self, keys: list[int], block: int) -> dict[str, Any]:
        slots = ["0x" + self.slot(k).to_bytes(32, "big").hex() for k in keys]
        response = self.w3.provider.make_request("eth_getProof", [self.address, slots, hex(block)])
        return dict(response["result"])

    def raw_block(self, number: int) -> dict[str, Any]:
        response = self.w3.provider.make_request("eth_getBlockByNumber", [hex(number), False])
        return dict(response["result"])
