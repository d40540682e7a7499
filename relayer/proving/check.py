"""``xmargin proof check`` / ``proof fetch``: verify an eth_getProof answer against a
block header whose hash is recomputed, for operators and auditors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from web3 import HTTPProvider, Web3

from proofs import header_from_rpc, verify_get_proof
from proofs.errors import MalformedInput
from relayer.errors import RpcError
from wire.hexstr import to_hex, word_hex


def rpc_result(document: Any, what: str) -> dict[str, Any]:
    """The bare result of a JSON-RPC answer, given either bare or as a whole response."""
    if isinstance(document, dict) and "jsonrpc" in document:
        if document.get("error") is not None:
            raise MalformedInput(what, f"JSON-RPC error {document['error']}")
        document = document.get("result")
    if not isinstance(document, dict):
        raise MalformedInput(what, "expected a JSON object (block or eth_getProof result)")
    return document


def load_json(path: Path, what: str) -> dict[str, Any]:
    try:
        return rpc_result(json.loads(path.read_text()), what)
    except (OSError, json.JSONDecodeError) as e:
        raise MalformedInput(what, f"{path}: {e}") from e


def check(block: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    """Every verified fact, as JSON-ready values; raises ``ProofError`` on any mismatch."""
    header = header_from_rpc(block)
    verified = verify_get_proof(header.state_root, answer)
    return {
        "block_number": header.number,
        "block_hash": to_hex(header.hash),
        "header_fork": header.fork,
        "state_root": to_hex(header.state_root),
        "address": to_hex(verified.address),
        "nonce": verified.account.nonce,
        "balance": verified.account.balance,
        "storage_root": to_hex(verified.account.storage_root),
        "code_hash": to_hex(verified.account.code_hash),
        "storage": {hex(slot): value for slot, value in verified.storage.items()},
    }


def fetch(rpc_url: str, address: str, slots: list[int],
          block: int | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The block and the eth_getProof answer at one block number (``latest`` resolved
    first, so both describe the same block)."""
    w3 = Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))

    def call(method: str, params: list[Any]) -> Any:
        try:
            response = w3.provider.make_request(method, params)  # type: ignore[arg-type]
        except Exception as e:
            raise RpcError(rpc_url, method, f"{type(e).__name__}: {e}") from e
        if response.get("error") is not None or response.get("result") is None:
            raise RpcError(rpc_url, method, str(response.get("error") or "no result"))
        return response["result"]

    number = block if block is not None else int(call("eth_blockNumber", []), 16)
    header = call("eth_getBlockByNumber", [hex(number), False])
    keys = [word_hex(s) for s in slots]
    answer = call("eth_getProof", [Web3.to_checksum_address(address), keys, hex(number)])
    return dict(header), dict(answer)
