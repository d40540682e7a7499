"""Writing to a chain's MarginOracle: the narrow edge the submitter works through
(``OracleWriter``), and its web3 adapter (``OracleChain``).

The adapter is where web3's errors become the relayer's: a revert in simulation is an
answer (its reason), a receipt not seen in time is ``None``, a used nonce is
``NonceTooLow`` (``relayer.delivery.sending``), and any other failure of the chain's
providers is ``RpcError``.
"""

from __future__ import annotations

from typing import Any, Protocol

from web3 import AsyncWeb3
from web3.exceptions import ContractLogicError

from relayer.chain.rpc import RpcPool
from relayer.contracts import compiled
from relayer.delivery.sending import ChainTransactions, TransactionWriter
from wire.hexstr import from_hex
from wire.records import Attestation, ChainCredit

# MarginOracle.submit's arguments: the attestation struct and the sorted signatures.
OracleCall = tuple[tuple[Any, ...], list[bytes]]
MAX_SIGNERS = 32  # MarginOracle.vy's


def oracle_struct(attestation: Attestation, credit: ChainCredit) -> tuple[Any, ...]:
    """The ``Attestation`` struct MarginOracle.vy takes, for one chain's credit line."""
    return (
        AsyncWeb3.to_checksum_address(attestation.trader), attestation.sequence,
        attestation.equity_wad, attestation.maintenance_margin_wad,
        attestation.initial_margin_wad, credit.free_collateral_wad, attestation.params_version,
        from_hex(attestation.source_blocks_hash), credit.source_block, attestation.valid_until,
    )


class OracleWriter(TransactionWriter, Protocol):
    async def latest_sequence(self, trader: str) -> int:
        """The newest sequence the oracle holds for ``trader`` (0 for none)."""
        ...

    async def signer_set(self) -> tuple[list[str], int]:
        """The oracle's current signers (lowercase) and threshold."""
        ...

    async def simulate(self, call: OracleCall, sender: str) -> str | None:
        """The revert reason of ``call`` sent now by ``sender``, or ``None`` if it passes."""
        ...


class OracleChain(ChainTransactions):
    """``OracleWriter`` over a chain's providers, failing over as ``RpcPool`` does."""

    def __init__(self, pool: RpcPool) -> None:
        super().__init__(pool)
        self.address = AsyncWeb3.to_checksum_address(pool.settings.oracle)
        self.abi = compiled("MarginOracle").abi

    def _contract(self, w3: AsyncWeb3) -> Any:
        return w3.eth.contract(address=self.address, abi=self.abi)

    async def latest_sequence(self, trader: str) -> int:
        latest = await self.pool.on_provider("latest", lambda w3: self._contract(
            w3).functions.latest(AsyncWeb3.to_checksum_address(trader)).call())
        return int(latest[1])

    async def signer_set(self) -> tuple[list[str], int]:
        async def read(w3: AsyncWeb3) -> tuple[list[str], int]:
            oracle = self._contract(w3)
            threshold = int(await oracle.functions.threshold().call())
            signers = []
            for i in range(MAX_SIGNERS):
                try:
                    signers.append(str(await oracle.functions.signers(i).call()).lower())
                except ContractLogicError:
                    break  # past the end of the DynArray
            return signers, threshold
        return await self.pool.on_provider("signer set", read)

    async def simulate(self, call: OracleCall, sender: str) -> str | None:
        return await self.revert_reason(
            "submit (simulated)", lambda w3: self._contract(w3).functions.submit(*call), sender,
            block="latest")

    async def build(self, call: OracleCall, sender: str) -> dict[str, Any]:
        return await self.build_call(
            "submit (build)", lambda w3: self._contract(w3).functions.submit(*call), sender)
