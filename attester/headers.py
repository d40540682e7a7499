"""An attester vouching for a source chain's header, for a cross-chain settlement's
credit: the one thing a destination ClearingVault takes on the signers' word (that a
block hash is a final block of the source chain); the debit it believes from the proof.

An attester signs only a header its own providers hold at that height, final on its
quorum (``Witness.block``), and signs it under the destination oracle's domain, so the
signature vouches for that header on that chain and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from eth_account.signers.local import LocalAccount

from attester.settings import AttesterChain
from attester.witness import NoQuorum, Quorum, Witness
from relayer.delivery.signing import Signature, sign_digest
from relayer.settlement.receipts import order_id
from relayer.settlement.vaults import DEBIT_LOOKBACK_BLOCKS, DEBITED_TOPIC
from wire.eip712 import source_header_digest
from wire.hexstr import from_hex, to_hex
from wire.records import HeaderVouch, SettlementOrder


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




class DebitWatch:
    """The settlement orders this attester signed whose debit it has not vouched for."""

    def __init__(self) -> None:
        self.pending: dict[str, tuple[SettlementOrder, int | None]] = {}

    def watch(self, order: SettlementOrder) -> None:
        self.pending.setdefault(to_hex(order_id(order.trader, order.nonce)), (order, None))


class DebitVoucher:
    """For each watched order, once its ``Debited`` event is in a block final on this
    attester's quorum, vouch for that block's header on the order's destination and
    publish the vouch (``risk.header_vouch.v1``). Every attester vouches for the same
    block (the debit's), so their signatures add up to a threshold over one digest."""

    def __init__(self, chains: Sequence[AttesterChain], voucher: HeaderVoucher,
                 quorums: Mapping[int, Quorum], debits: DebitWatch,
                 publish: Callable[[HeaderVouch], Awaitable[None]], poll_s: float = 0.5) -> None:
        self.vaults = {c.chain_id: c.clearing_vault for c in chains if c.clearing_vault}
        self.voucher = voucher
        self.quorums = quorums
        self.debits = debits
        self.publish = publish
        self.poll_s = poll_s

    async def step(self) -> int:
        """One look at every watched order; how many were vouched for."""
        done = 0
        for key, (order, since) in list(self.debits.pending.items()):
            vault, quorum = self.vaults.get(order.src_chain), self.quorums.get(order.src_chain)
            if vault is None or quorum is None:
                del self.debits.pending[key]  # not a chain this attester watches
                continue
            try:
                if since is None:
                    head = await quorum.agreed("eth_blockNumber", [], lambda r: int(r, 16))
                    since = max(0, head - DEBIT_LOOKBACK_BLOCKS)
                    self.debits.pending[key] = (order, since)
                found = await quorum.agreed("eth_getLogs", [{
                    "address": vault, "fromBlock": hex(since), "toBlock": "latest",
                    "topics": [DEBITED_TOPIC, None, key]}], debit_blocks)
            except NoQuorum:
                continue
            if not found:
                continue
            number, block_hash = found[-1]
            answer = await self.voucher.vouch(order.dst_chain, order.src_chain, number,
                                              from_hex(block_hash))
            if isinstance(answer, str):
                continue  # not final on the quorum yet, or not the block it holds
            await self.publish(HeaderVouch(
                order_id=key, trader=order.trader, nonce=order.nonce, src_chain=order.src_chain,
                dst_chain=order.dst_chain, number=number, block_hash=block_hash,
                attester=answer.signer, signature=to_hex(answer.signature)))
            del self.debits.pending[key]
            done += 1
        return done

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.step()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.poll_s)


def debit_blocks(result: Any) -> list[tuple[int, str]]:
    """(number, hash) of each ``Debited`` log in an ``eth_getLogs`` answer, oldest first."""
    return [(int(e["blockNumber"], 16), str(e["blockHash"])) for e in result
            if not e.get("removed")]
