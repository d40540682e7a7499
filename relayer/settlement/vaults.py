"""A chain's ClearingVault, as the settler sees it: the narrow edge (``VaultWriter``) and
its web3 adapter over the chain's providers (``VaultChain``)."""

from __future__ import annotations

from typing import Any, Protocol

from web3 import AsyncWeb3

from proofs.header import BlockHeader
from proofs.keccak import keccak
from relayer.chain.rpc import RpcPool
from relayer.contracts import compiled
from relayer.delivery.sending import ChainTransactions, TransactionWriter
from relayer.errors import ConfigError
from relayer.settlement.receipts import ReceiptProof, check_receipt, order_id, receipt_slot
from wire.hexstr import from_hex, to_hex
from wire.records import SettlementOrder

# keccak256 of ClearingVault's Debited(address,bytes32,uint64,uint256,uint256,bytes32): its
# trader and order id are indexed.
DEBITED_TOPIC = to_hex(keccak(b"Debited(address,bytes32,uint64,uint256,uint256,bytes32)"))
# How far below the head an order's debit is looked for: an order is debited within its
# ttl of being issued (600 s by default), far fewer blocks than this on any chain.
DEBIT_LOOKBACK_BLOCKS = 10_000


def order_tuple(o: SettlementOrder) -> tuple[Any, ...]:
    """The order as ClearingVault.vy's ``Order`` struct."""
    at = AsyncWeb3.to_checksum_address
    return (at(o.trader), o.nonce, o.src_chain, at(o.src_vault), at(o.src_venue), o.dst_chain,
            at(o.dst_vault), at(o.dst_venue), o.amount, o.expiry)


class VaultCall:
    """One vault function and its arguments, built and sent by ``TransactionSender``."""

    def __init__(self, function: str, args: tuple[Any, ...]) -> None:
        self.function = function
        self.args = args


class VaultWriter(TransactionWriter, Protocol):
    vault: str

    async def receipt_of(self, oid: bytes, block: int | str) -> bytes: ...

    async def credited(self, oid: bytes) -> bool: ...

    async def queued(self, oid: bytes) -> tuple[bytes, int]: ...

    async def halted(self, chain_id: int) -> bool: ...

    async def finalized_height(self) -> int: ...

    async def debit_block(self, oid: bytes) -> tuple[int, bytes] | None: ...

    async def prove(self, order: SettlementOrder, number: int) -> ReceiptProof: ...

    async def events(self, name: str, first: int, last: int) -> list[dict[str, Any]]: ...

    async def frozen(self, oid: bytes) -> bool: ...

    async def simulate(self, call: VaultCall, sender: str) -> str | None: ...


class VaultChain(ChainTransactions):
    """``VaultWriter`` over a chain's providers."""

    def __init__(self, pool: RpcPool) -> None:
        super().__init__(pool)
        if pool.settings.clearing_vault is None:
            raise ConfigError(f"chains.{self.name}.clearing_vault", "this chain does not settle")
        self.vault = pool.settings.clearing_vault

    def _contract(self, w3: AsyncWeb3) -> Any:
        return w3.eth.contract(address=AsyncWeb3.to_checksum_address(self.vault),
                               abi=compiled("ClearingVault").abi)

    async def _read(self, name: str, *args: Any, block: int | str = "latest") -> Any:
        return await self.pool.on_provider(name, lambda w3: getattr(
            self._contract(w3).functions, name)(*args).call(block_identifier=block))

    async def receipt_of(self, oid: bytes, block: int | str) -> bytes:
        """The order hash the vault's receipt slot holds for ``oid`` at ``block``."""
        return bytes(await self._read("receipts", oid, block=block))

    async def credited(self, oid: bytes) -> bool:
        return bool(await self._read("credited", oid))

    async def queued(self, oid: bytes) -> tuple[bytes, int]:
        """(the queued order's hash or zero, when it may be released)."""
        return bytes(await self._read("queued_hash", oid)), int(await self._read("release_at", oid))

    async def halted(self, chain_id: int) -> bool:
        return bool(await self._read("halted", chain_id))

    async def finalized_height(self) -> int:
        return await self.pool.finalized_height()

    async def debit_block(self, oid: bytes) -> tuple[int, bytes] | None:
        """(number, hash) of the block holding the order's ``Debited`` event, as this
        chain's providers hold it now (``None``: not debited, or orphaned)."""
        first = max(0, await self.pool.block_number() - DEBIT_LOOKBACK_BLOCKS)
        logs = await self.pool.request("eth_getLogs", [{
            "address": self.vault, "fromBlock": hex(first), "toBlock": "latest",
            "topics": [DEBITED_TOPIC, None, to_hex(oid)]}])
        live = [e for e in logs if not e.get("removed")]
        if not live:
            return None
        return int(live[-1]["blockNumber"], 16), from_hex(live[-1]["blockHash"])

    async def prove(self, order: SettlementOrder, number: int) -> ReceiptProof:
        """The receipt of ``order`` in block ``number`` of this (the source) chain,
        verified against the header's state root before it is used."""
        header: BlockHeader = await self.pool.header(number)
        answer = await self.pool.proof(order.src_vault, [receipt_slot(order)], number)
        return check_receipt(order, header, answer)

    async def events(self, name: str, first: int, last: int) -> list[dict[str, Any]]:
        """The vault's ``name`` events in blocks ``first`` to ``last``, each its decoded
        arguments."""
        logs = await self.pool.on_provider(f"{name} logs", lambda w3: getattr(
            self._contract(w3).events, name)().get_logs(from_block=first, to_block=last))
        return [dict(e["args"]) for e in logs]

    async def frozen(self, oid: bytes) -> bool:
        return bool(await self._read("frozen", oid))

    async def simulate(self, call: VaultCall, sender: str) -> str | None:
        """The revert reason of ``call`` at the pending block, or ``None``."""
        return await self.revert_reason(f"{call.function} (simulated)", lambda w3: getattr(
            self._contract(w3).functions, call.function)(*call.args), sender)

    async def build(self, call: VaultCall, sender: str) -> dict[str, Any]:
        return await self.build_call(f"{call.function} (build)", lambda w3: getattr(
            self._contract(w3).functions, call.function)(*call.args), sender)


__all__ = ["VaultCall", "VaultChain", "VaultWriter", "order_id", "order_tuple"]
