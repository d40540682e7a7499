"""An attester vouching for a source chain's header, for a cross-chain settlement's
credit: the one thing a destination ClearingVault takes on the signers' word (that a
block hash is a final block of the source chain); the debit it believes from the proof.

An attester signs only a header its own providers hold at that height, final on its
quorum (``Witness.block``), and signs it under the destination oracle's domain, so the
signature vouches for that header on that chain and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_account.signers.local import LocalAccount

from attester.settings import AttesterChain
from attester.witness import NoQuorum, Witness
from relayer.delivery.signing import Signature, sign_digest
from wire.eip712 import source_header_digest
from wire.hexstr import to_hex


class HeaderVoucher:
    def __init__(self, chains: Sequence[AttesterChain], signer: LocalAccount,
                 witness: Witness) -> None:
        self.oracles = {c.chain_id: c.oracle for c in chains}
        self.signer = signer
        self.witness = witness

    async def vouch(self, dst_chain: int, src_chain: int, number: int,
                    block_hash: bytes) -> Signature | str:
        """My signature over the ``SourceHeader``, or why I will not give it."""
        oracle = self.oracles.get(dst_chain)
        if oracle is None:
            return f"destination chain {dst_chain} is not one this attester signs for"
        try:
            difference = await self.witness.block("source header", src_chain, number,
                                                  to_hex(block_hash))
        except NoQuorum as e:
            return str(e)
        if difference is not None:
            return difference
        return sign_digest(self.signer, source_header_digest(
            dst_chain, bytes.fromhex(oracle[2:]), src_chain, number, block_hash))
