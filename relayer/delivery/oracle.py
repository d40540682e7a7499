"""Writing to a chain's MarginOracle: the narrow edge the submitter works through
(``OracleWriter``), and its web3 adapter (``OracleChain``).

The adapter is where web3's errors become the relayer's: a revert in simulation is an
answer (its reason), a receipt not seen in time is ``None``, a used nonce is
``NonceTooLow``, and any other failure of the chain's providers is ``RpcError``.
"""

from __future__ import annotations

from typing import Any, Protocol

from web3 import AsyncWeb3
from web3.exceptions import ContractLogicError, TimeExhausted, Web3Exception

from relayer.chain.rpc import RpcPool
from relayer.contracts import compiled
from relayer.errors import NonceTooLow
from wire.hexstr import from_hex
from wire.records import Attestation, ChainCredit

# MarginOracle.submit's arguments: the attestation struct and the sorted signatures.
OracleCall = tuple[tuple[Any, ...], list[bytes]]


def oracle_struct(attestation: Attestation, credit: ChainCredit) -> tuple[Any, ...]:
    """The ``Attestation`` struct MarginOracle.vy takes, for one chain's credit line."""
    return (
        AsyncWeb3.to_checksum_address(attestation.trader), attestation.sequence,
        attestation.equity_wad, attestation.maintenance_margin_wad,
        attestation.initial_margin_wad, credit.free_collateral_wad, attestation.params_version,
        from_hex(attestation.source_blocks_hash), credit.source_block, attestation.valid_until,
    )


class OracleWriter(Protocol):
    chain_id: int
    name: str
    confirm_timeout_s: float
    max_fee_cap_wei: int

    async def latest_sequence(self, trader: str) -> int:
        """The newest sequence the oracle holds for ``trader`` (0 for none)."""
        ...

    async def simulate(self, call: OracleCall, sender: str) -> str | None:
        """The revert reason of ``call`` sent now by ``sender``, or ``None`` if it passes."""
        ...

    async def build(self, call: OracleCall, sender: str) -> dict[str, Any]:
        """An EIP-1559 transaction for ``call`` with the chain's fee estimates (unsigned,
        ``maxFeePerGas`` and ``maxPriorityFeePerGas`` set, no nonce yet)."""
        ...

    async def pending_nonce(self, address: str) -> int: ...

    async def send_raw(self, raw: bytes, nonce: int) -> None:
        """Broadcast a signed transaction; ``NonceTooLow`` when its nonce is used."""
        ...

    async def receipt_status(self, tx_hash: str, timeout_s: float) -> int | None:
        """The receipt's status (1 success, 0 reverted), or ``None`` if none within
        ``timeout_s``."""
        ...


class OracleChain:
    """``OracleWriter`` over a chain's providers, failing over as ``RpcPool`` does."""

    def __init__(self, pool: RpcPool) -> None:
        self.pool = pool
        self.chain_id = pool.settings.chain_id
        self.name = pool.settings.name
        self.confirm_timeout_s = pool.settings.confirm_timeout_s
        self.max_fee_cap_wei = int(pool.settings.max_fee_cap_gwei * 10**9)
        self.address = AsyncWeb3.to_checksum_address(pool.settings.oracle)
        self.abi = compiled("MarginOracle").abi

    def _contract(self, w3: AsyncWeb3) -> Any:
        return w3.eth.contract(address=self.address, abi=self.abi)

    async def latest_sequence(self, trader: str) -> int:
        latest = await self.pool.on_provider("latest", lambda w3: self._contract(
            w3).functions.latest(AsyncWeb3.to_checksum_address(trader)).call())
        return int(latest[1])

    async def simulate(self, call: OracleCall, sender: str) -> str | None:
        try:
            await self.pool.on_provider(
                "submit (simulated)",
                lambda w3: self._contract(w3).functions.submit(*call).call({"from": sender}),
                is_answer=lambda e: isinstance(e, ContractLogicError))
        except ContractLogicError as e:
            return str(e)
        return None

    async def build(self, call: OracleCall, sender: str) -> dict[str, Any]:
        tx = await self.pool.on_provider(
            "submit (build)", lambda w3: self._contract(w3).functions.submit(
                *call).build_transaction({"from": sender, "chainId": self.chain_id}))
        return dict(tx)

    async def pending_nonce(self, address: str) -> int:
        return int(await self.pool.on_provider(
            "eth_getTransactionCount",
            lambda w3: w3.eth.get_transaction_count(address, "pending")))  # type: ignore[arg-type]

    async def send_raw(self, raw: bytes, nonce: int) -> None:
        try:
            # A signed transaction has one hash: sent again through the next provider,
            # it is the same transaction.
            await self.pool.on_provider(
                "eth_sendRawTransaction", lambda w3: w3.eth.send_raw_transaction(raw),
                is_answer=nonce_used)
        except Web3Exception as e:
            raise NonceTooLow(self.name, nonce, str(e)) from e

    async def receipt_status(self, tx_hash: str, timeout_s: float) -> int | None:
        try:
            receipt = await self.pool.on_provider(
                "eth_getTransactionReceipt",
                lambda w3: w3.eth.wait_for_transaction_receipt(
                    tx_hash, timeout=timeout_s, poll_latency=0.2),  # type: ignore[arg-type]
                timeout_s=timeout_s + self.pool.settings.rpc_timeout_s,
                is_answer=lambda e: isinstance(e, TimeExhausted))
        except TimeExhausted:
            return None
        return int(receipt["status"])


def nonce_used(error: Exception) -> bool:
    return isinstance(error, Web3Exception) and "nonce too low" in str(error).lower()
