"""Reading a chain, as the listener and the proof service need it: the narrow edge in
front of the RPC providers (``relayer.chain.rpc.RpcPool``; a fake in unit tests).

Every header is verified (its fields hash to its hash) before it is returned; a
failure of every provider raises ``RpcError``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from proofs import BlockHeader
from relayer.settings import ChainSettings
from wire.hexstr import to_hex


class ChainReader(Protocol):
    settings: ChainSettings

    async def block_number(self) -> int: ...

    async def finalized_height(self) -> int:
        """The newest final block (−1 while there is none)."""
        ...

    async def header(self, number: int) -> BlockHeader: ...

    async def header_by_hash(self, block_hash: str) -> BlockHeader: ...

    async def headers_everywhere(self, number: int) -> dict[str, BlockHeader | str]:
        """Every provider's header ``number``, or what went wrong asking it, keyed by
        provider and in the providers' current rank order."""
        ...

    async def logs(self, block_hash: str, addresses: list[str]) -> list[dict[str, Any]]: ...

    async def proof(self, address: str, slots: list[int], block_number: int,
                    parse: Callable[[Any], Any] | None = None) -> Any:
        """``eth_getProof``; with ``parse`` (a verifier), a provider whose proof does not
        verify counts as failing and the next one is asked."""
        ...


def hash_views(headers: dict[str, BlockHeader | str]) -> dict[str, str]:
    """Provider → block hash (or its error), as evidence is written."""
    return {url: h if isinstance(h, str) else to_hex(h.hash) for url, h in headers.items()}
