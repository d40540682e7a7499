"""JSON-RPC access to one chain through its providers, in priority order.

Answers are returned raw (0x-hex JSON, exactly as the node sent them) because
``proofs`` recomputes hashes from them; a call fails over to the next provider on a
timeout, a transport error, a JSON-RPC error body (HTTP 429 included) or a block whose
fields do not hash to the hash it claims.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.exceptions import Web3Exception

from proofs import BlockHeader, ProofError, header_from_rpc
from relayer import metrics
from relayer.errors import RpcError
from relayer.settings import ChainSettings
from wire.hexstr import to_hex, word_hex

log = logging.getLogger(__name__)
T = TypeVar("T")


def verified_block(block: Any) -> BlockHeader:
    """The header of a JSON-RPC block. A missing block is a lagging provider; a block
    whose fields do not hash to its hash is a lying one: either way, ask the next."""
    if not isinstance(block, dict):
        raise ValueError("block not found")
    return header_from_rpc(block)


@dataclass
class Provider:
    """One RPC endpoint and how it has been behaving."""

    url: str
    priority: int
    w3: AsyncWeb3
    failures: int = 0          # consecutive
    demoted_until: float = 0.0  # monotonic time

    @property
    def label(self) -> str:
        return metrics.provider_label(self.url)


def error_kind(error: Exception) -> str:
    """The ``xmargin_rpc_errors_total`` kind of a failed call."""
    if isinstance(error, TimeoutError):
        return "timeout"
    if isinstance(error, aiohttp.ClientResponseError) and error.status == 429:
        return "rate_limited"
    if isinstance(error, RpcError):
        # A JSON-RPC error body; some providers rate-limit with one (code 429, -32005).
        detail = error.detail.lower()
        limited = "'code': 429" in detail or "-32005" in detail or "rate limit" in detail
        return "rate_limited" if limited else "error_body"
    if isinstance(error, (ProofError, ValueError)) and not isinstance(error, OSError):
        return "bad_answer"
    return "transport"


class RpcPool:
    """A ``ChainReader`` over the chain's providers. Providers are tried in priority
    order; one that fails ``DEMOTE_AFTER`` times in a row (timeouts, transport errors,
    error bodies, HTTP 429, or an answer that does not verify) goes to the back of the
    list for ``DEMOTION_S``."""

    DEMOTE_AFTER = 3
    DEMOTION_S = 60.0

    def __init__(self, settings: ChainSettings) -> None:
        self.settings = settings
        self.name = settings.name
        self.providers = [
            Provider(url, i, AsyncWeb3(AsyncHTTPProvider(
                url, request_kwargs={"timeout": settings.rpc_timeout_s},
                exception_retry_configuration=None)))
            for i, url in enumerate(settings.rpc_urls)
        ]
        for p in self.providers:  # exported at 0 before the first call or failure
            for counted in (metrics.RPC_REQUESTS, metrics.RPC_LATENCY, metrics.RPC_DEMOTIONS):
                counted.labels(chain=self.name, provider=p.label)
            for kind in metrics.RPC_ERROR_KINDS:
                metrics.RPC_ERRORS.labels(chain=self.name, provider=p.label, kind=kind)

    def ranked(self) -> list[Provider]:
        now = time.monotonic()
        return sorted(self.providers, key=lambda p: (p.demoted_until > now, p.priority))

    async def request(self, method: str, params: list[Any],
                      parse: Callable[[Any], Any] | None = None) -> Any:
        """The ``result`` of ``method`` from the first provider whose answer arrives in
        time and, given ``parse``, parses (``parse`` raises on an answer that does not
        verify; its value is returned)."""
        async def ask(w3: AsyncWeb3) -> Any:
            response = await w3.provider.make_request(method, params)  # type: ignore[arg-type]
            if "error" in response:
                raise RpcError(self.name, method, str(response["error"]))
            result = response.get("result")
            return parse(result) if parse is not None else result
        return await self.on_provider(method, ask)

    async def on_provider(self, method: str, call: Callable[[AsyncWeb3], Awaitable[T]],
                          timeout_s: float | None = None,
                          is_answer: Callable[[Exception], bool] = lambda e: False) -> T:
        """``call`` on the best provider, and on the next while one fails (a timeout,
        a transport error, an error body, an answer that does not verify). An exception
        ``is_answer`` says the chain gave (a revert, a used nonce) is raised as it is,
        and counts against no provider. Every provider failing raises ``RpcError``."""
        failures = []
        for provider in self.ranked():
            metrics.RPC_REQUESTS.labels(chain=self.name, provider=provider.label).inc()
            started = time.monotonic()
            try:
                result = await asyncio.wait_for(call(provider.w3),
                                                timeout=timeout_s or self.settings.rpc_timeout_s)
            except (TimeoutError, OSError, ValueError, aiohttp.ClientError, Web3Exception,
                    RpcError, ProofError) as e:
                if is_answer(e):
                    raise
                failures.append(f"{provider.label}: {type(e).__name__}: {e}")
                self.failed(provider, method, e)
                continue
            metrics.RPC_LATENCY.labels(chain=self.name, provider=provider.label).observe(
                time.monotonic() - started)
            provider.failures = 0
            return result
        raise RpcError(self.name, method, "; ".join(failures))

    def failed(self, provider: Provider, method: str, error: Exception) -> None:
        provider.failures += 1
        kind = error_kind(error)
        metrics.RPC_ERRORS.labels(chain=self.name, provider=provider.label, kind=kind).inc()
        log.warning("rpc failure", extra={"chain": self.name, "provider": provider.label,
                                          "method": method, "kind": kind,
                                          "error": type(error).__name__})
        if provider.failures >= self.DEMOTE_AFTER:
            if provider.demoted_until <= time.monotonic():
                metrics.RPC_DEMOTIONS.labels(chain=self.name, provider=provider.label).inc()
            provider.demoted_until = time.monotonic() + self.DEMOTION_S
            log.warning("rpc provider demoted", extra={"chain": self.name,
                                                       "provider": provider.label})

    async def close(self) -> None:
        for provider in self.providers:
            await provider.w3.provider.disconnect()

    async def chain_id(self) -> int:
        return int(await self.request("eth_chainId", []), 16)

    async def block_number(self) -> int:
        return int(await self.request("eth_blockNumber", []), 16)

    async def header(self, number: int) -> BlockHeader:
        """Header ``number``, from a provider whose fields hash to the hash it reports."""
        header: BlockHeader = await self.request("eth_getBlockByNumber", [hex(number), False],
                                                 parse=verified_block)
        return header

    async def finalized_height(self) -> int:
        """The newest final block: the ``finality_tag`` block, or ``finality_blocks``
        below the head (−1 while there is none)."""
        if self.settings.finality_tag is not None:
            header: BlockHeader = await self.request(
                "eth_getBlockByNumber", [self.settings.finality_tag, False], parse=verified_block)
            return header.number
        return await self.block_number() - self.settings.finality_blocks

    async def headers_everywhere(self, number: int) -> dict[str, BlockHeader | str]:
        """Every provider's header ``number`` (verified), or what went wrong asking it, in
        rank order."""
        async def ask(provider: Provider) -> BlockHeader | str:
            try:
                response = await asyncio.wait_for(
                    provider.w3.provider.make_request(  # type: ignore[arg-type]
                        "eth_getBlockByNumber", [hex(number), False]),
                    timeout=self.settings.rpc_timeout_s)
                if "error" in response:
                    return f"error: {response['error']}"
                return verified_block(response.get("result"))
            except Exception as e:  # evidence: every failure is an answer here
                return f"error: {type(e).__name__}: {e}"
        ranked = self.ranked()
        answers = await asyncio.gather(*(ask(p) for p in ranked))
        return {p.url: a for p, a in zip(ranked, answers, strict=True)}

    async def header_by_hash(self, block_hash: str) -> BlockHeader:
        def parse(block: Any) -> BlockHeader:
            header = verified_block(block)
            if to_hex(header.hash) != block_hash:
                raise ValueError(f"answered another block than {block_hash}")
            return header
        header: BlockHeader = await self.request("eth_getBlockByHash", [block_hash, False],
                                                 parse=parse)
        return header

    async def logs(self, block_hash: str, addresses: list[str]) -> list[dict[str, Any]]:
        # Filtering by block hash ties the logs to the header we verified, not to
        # whatever block holds that number on the provider right now.
        return list(await self.request(
            "eth_getLogs", [{"blockHash": block_hash, "address": addresses}]
        ))

    async def proof(self, address: str, slots: list[int], block_number: int,
                    parse: Callable[[Any], Any] | None = None) -> Any:
        """eth_getProof; with ``parse`` (a verifier), a provider whose proof does not
        verify counts as failing and the next one is asked."""
        keys = [word_hex(s) for s in slots]
        return await self.request("eth_getProof", [address, keys, hex(block_number)],
                                  parse=parse or dict)
