"""JSON-RPC access to one chain through its providers, in priority order.

Answers are returned raw (0x-hex JSON, exactly as the node sent them) because
``proofs`` recomputes hashes from them; a call fails over to the next provider on a
timeout, a transport error or a JSON-RPC error body.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from web3 import AsyncHTTPProvider, AsyncWeb3

from relayer.config import ChainSettings
from relayer.errors import RpcError

log = logging.getLogger(__name__)


class ChainClient:
    def __init__(self, settings: ChainSettings) -> None:
        self.settings = settings
        self.name = settings.name
        self.web3s = [
            AsyncWeb3(AsyncHTTPProvider(url, request_kwargs={"timeout": settings.rpc_timeout_s},
                                        exception_retry_configuration=None))
            for url in settings.rpc_urls
        ]

    @property
    def w3(self) -> AsyncWeb3:
        """The first-priority provider, for contract calls and transactions."""
        return self.web3s[0]

    async def request(self, method: str, params: list[Any]) -> Any:
        """The raw ``result`` of ``method``, from the first provider that answers."""
        failures = []
        for url, w3 in zip(self.settings.rpc_urls, self.web3s, strict=True):
            try:
                response = await asyncio.wait_for(
                    w3.provider.make_request(method, params),  # type: ignore[arg-type]
                    timeout=self.settings.rpc_timeout_s,
                )
            except (TimeoutError, OSError, ValueError) as e:
                failures.append(f"{url}: {type(e).__name__}: {e}")
                continue
            except Exception as e:
                failures.append(f"{url}: {type(e).__name__}: {e}")
                continue
            if "error" in response:
                failures.append(f"{url}: {response['error']}")
                continue
            return response.get("result")
        raise RpcError(self.name, method, "; ".join(failures))

    async def close(self) -> None:
        for w3 in self.web3s:
            await w3.provider.disconnect()

    async def chain_id(self) -> int:
        return int(await self.request("eth_chainId", []), 16)

    async def block_number(self) -> int:
        return int(await self.request("eth_blockNumber", []), 16)

    async def block(self, number: int) -> dict[str, Any]:
        result = await self.request("eth_getBlockByNumber", [hex(number), False])
        if result is None:
            raise RpcError(self.name, "eth_getBlockByNumber", f"block {number} not found")
        return dict(result)

    async def block_by_hash(self, block_hash: str) -> dict[str, Any]:
        result = await self.request("eth_getBlockByHash", [block_hash, False])
        if result is None:
            raise RpcError(self.name, "eth_getBlockByHash", f"block {block_hash} not found")
        return dict(result)

    async def logs(self, block_hash: str, addresses: list[str]) -> list[dict[str, Any]]:
        # Filtering by block hash ties the logs to the header we verified, not to
        # whatever block holds that number on the provider right now.
        return list(await self.request(
            "eth_getLogs", [{"blockHash": block_hash, "address": addresses}]
        ))

    async def proof(self, address: str, slots: list[int], block_number: int) -> dict[str, Any]:
        keys = ["0x" + s.to_bytes(32, "big").hex() for s in slots]
        return dict(await self.request("eth_getProof", [address, keys, hex(block_number)]))
