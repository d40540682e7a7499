"""Sending one contract call as a transaction, the same way for every writer (the
attestation submitter, the liquidation keeper): nonce and fees persisted before the
transaction is sent, a transaction not confirmed in time replaced with the same nonce
and higher fees, never queued behind, and never above the chain's fee cap.

``TransactionWriter`` is the narrow edge to the chain; ``ChainTransactions`` is its
common part over an ``RpcPool`` (nonces, broadcast, receipts), which each writer's web3
adapter extends with how to build and simulate its own calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from eth_account.signers.local import LocalAccount
from web3 import AsyncWeb3
from web3.exceptions import ContractLogicError, TimeExhausted, Web3Exception

from bus import metrics as liveness
from relayer import metrics
from relayer.chain.rpc import RpcPool
from relayer.delivery.outcome import Outcome, Reason, Result, delivery_status
from relayer.delivery.retries import InFlight, InFlightStore, RetryStore, with_retries
from relayer.errors import NonceTooLow
from wire.hexstr import to_hex

log = logging.getLogger(__name__)
WEI = 10**18
BALANCE_EVERY_S = 15.0


@dataclass(frozen=True)
class Receipt:
    status: int  # 1 success, 0 reverted
    fee_wei: int  # gas used × effective gas price


class TransactionWriter(Protocol):
    chain_id: int
    name: str
    confirm_timeout_s: float
    max_fee_cap_wei: int

    async def build(self, call: Any, sender: str) -> dict[str, Any]:
        """An EIP-1559 transaction for ``call`` with the chain's fee estimates (unsigned,
        ``maxFeePerGas`` and ``maxPriorityFeePerGas`` set, no nonce yet)."""
        ...

    async def pending_nonce(self, address: str) -> int: ...

    async def send_raw(self, raw: bytes, nonce: int) -> None:
        """Broadcast a signed transaction; ``NonceTooLow`` when its nonce is used."""
        ...

    async def receipt(self, tx_hash: str, timeout_s: float) -> Receipt | None:
        """The transaction's receipt, or ``None`` if none within ``timeout_s``."""
        ...

    async def balance(self, address: str) -> int:
        """The account's balance in wei."""
        ...


class TransactionSender:
    """Sends calls of one writer from one account, one in-flight transaction per key,
    and counts what it does under the account's ``role`` (``relayer.metrics``)."""

    def __init__(self, writer: TransactionWriter, account: LocalAccount,
                 in_flight: InFlightStore, role: str) -> None:
        self.writer = writer
        self.account = account
        self.in_flight = in_flight
        self.labels = {"chain": writer.name, "role": role}
        self.sent_at: dict[str, float] = {}  # tx hash → when broadcast (monotonic)
        metrics.IN_FLIGHT.labels(**self.labels).set_function(lambda: len(in_flight.entries))
        for counted in (metrics.ATTEMPTS, metrics.SENT, metrics.FEE_BUMPS,
                        metrics.CONFIRM_SECONDS, metrics.FEE_PAID, metrics.DEAD_LETTERED):
            counted.labels(**self.labels)  # exported at 0 before the first

    async def run(self, key: str, attempt: Callable[[], Awaitable[Result]],
                  retries: RetryStore, max_attempts: int) -> Result:
        """``attempt`` until it ends (any outcome but RETRY) or ``max_attempts`` are
        spent, the count kept in ``retries`` so a restart goes on counting; the result,
        counted by outcome and reason."""
        result = Result(Outcome.RETRY, Reason.RETRIES_SPENT)

        async def once() -> tuple[bool, str]:
            nonlocal result
            metrics.ATTEMPTS.labels(**self.labels).inc()
            result = await attempt()
            liveness.beat()
            if result.outcome is Outcome.RETRY:
                log.warning("delivery retry", extra={**self.labels, "key": key,
                                                      "reason": result.cause.value})
            return result.outcome is not Outcome.RETRY, result.reason

        finished, reason = await with_retries(key, once, retries, max_attempts)
        if not finished:
            result = Result(Outcome.RETRY, Reason.RETRIES_SPENT, reason, result.tx_hash)
            metrics.DEAD_LETTERED.labels(**self.labels).inc()
        metrics.DELIVERIES.labels(**self.labels, outcome=delivery_status(result),
                                  reason=result.cause.value).inc()
        return result

    async def submit(self, key: str, call: Any) -> str:
        """Send ``call``; one already in flight for ``key`` is replaced with the same
        nonce and fees of max(1.1 × the last, a fresh estimate), capped: a stuck
        transaction is outbid, never queued behind."""
        tx = await self.writer.build(call, self.account.address)
        previous = self.in_flight.get(key)
        nonce, max_fee, tip = await self.fees(previous, tx)
        if previous is not None and max_fee <= previous.max_fee_wei:
            # At the cap: wait for the transaction already out rather than re-send it.
            return previous.tx_hash
        tx.update({"nonce": nonce, "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip})
        signed = self.account.sign_transaction(tx)
        tx_hash = to_hex(bytes(signed.hash))
        self.in_flight.put(key, InFlight(nonce, max_fee, tip, tx_hash))
        try:
            await self.writer.send_raw(signed.raw_transaction, nonce)
        except NonceTooLow:
            # Used by this call (the chain says so next time) or by another: either way
            # a fresh nonce next attempt.
            self.in_flight.put(key, None)
            raise
        self.sent_at[tx_hash] = time.monotonic()
        metrics.SENT.labels(**self.labels).inc()
        metrics.NONCE.labels(**self.labels).set(nonce)
        if previous is not None:
            # Only the newest transaction of a key is waited on: the replaced one's
            # send time would stay here for good.
            self.sent_at.pop(previous.tx_hash, None)
            metrics.FEE_BUMPS.labels(**self.labels).inc()
        log.info("transaction sent", extra={**self.labels, "tx": tx_hash,
                                            "nonce": nonce, "replaces": previous is not None})
        return tx_hash

    async def confirm(self, tx_hash: str, timeout_s: float | None = None) -> Result:
        """Wait up to ``timeout_s`` (default the chain's ``confirm_timeout_s``) for the
        receipt of ``tx_hash``."""
        wait_s = self.writer.confirm_timeout_s if timeout_s is None else timeout_s
        receipt = await self.writer.receipt(tx_hash, wait_s)
        if receipt is None:
            return Result(Outcome.RETRY, Reason.NOT_CONFIRMED, "receipt not seen within "
                          f"{wait_s:g} s", tx_hash)
        sent = self.sent_at.pop(tx_hash, None)
        if sent is not None:
            metrics.CONFIRM_SECONDS.labels(**self.labels).observe(time.monotonic() - sent)
        metrics.FEE_PAID.labels(**self.labels).inc(receipt.fee_wei / WEI)
        if receipt.status != 1:
            return Result(Outcome.DROPPED, Reason.REVERTED, "transaction reverted", tx_hash)
        return Result(Outcome.DELIVERED, Reason.CONFIRMED, "", tx_hash)

    async def watch_balance(self, stop: asyncio.Event) -> None:
        """Keep ``xmargin_sender_balance_eth`` current until ``stop``, so an alert fires
        before the account runs dry."""
        gauge = metrics.BALANCE.labels(**self.labels)
        while not stop.is_set():
            gauge.set(await self.writer.balance(self.account.address) / WEI)
            liveness.beat()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=BALANCE_EVERY_S)

    async def fees(self, previous: InFlight | None, tx: dict[str, int]
                   ) -> tuple[int, int, int]:
        """(nonce, max fee, tip) for a first send or a replacement, within the cap."""
        cap = self.writer.max_fee_cap_wei
        if previous is None:
            nonce = await self.writer.pending_nonce(self.account.address)
            max_fee, tip = int(tx["maxFeePerGas"]), int(tx["maxPriorityFeePerGas"])
        else:
            nonce = previous.nonce
            max_fee = max(-(-previous.max_fee_wei * 11 // 10), int(tx["maxFeePerGas"]))
            tip = max(-(-previous.priority_fee_wei * 11 // 10), int(tx["maxPriorityFeePerGas"]))
        return nonce, min(max_fee, cap), min(tip, cap)


class ChainTransactions:
    """Nonces, broadcast and receipts over a chain's providers, failing over as
    ``RpcPool`` does: the part every writer's adapter shares."""

    def __init__(self, pool: RpcPool) -> None:
        self.pool = pool
        self.chain_id = pool.settings.chain_id
        self.name = pool.settings.name
        self.confirm_timeout_s = pool.settings.confirm_timeout_s
        self.max_fee_cap_wei = int(pool.settings.max_fee_cap_gwei * 10**9)

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

    async def receipt(self, tx_hash: str, timeout_s: float) -> Receipt | None:
        try:
            receipt = await self.pool.on_provider(
                "eth_getTransactionReceipt",
                lambda w3: w3.eth.wait_for_transaction_receipt(
                    tx_hash, timeout=timeout_s, poll_latency=0.2),  # type: ignore[arg-type]
                timeout_s=timeout_s + self.pool.settings.rpc_timeout_s,
                is_answer=lambda e: isinstance(e, TimeExhausted))
        except TimeExhausted:
            return None
        return Receipt(int(receipt["status"]),
                       int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"]))

    async def balance(self, address: str) -> int:
        return int(await self.pool.on_provider(
            "eth_getBalance",
            lambda w3: w3.eth.get_balance(address)))  # type: ignore[arg-type]

    async def build_call(self, what: str, function: Any, sender: str) -> dict[str, Any]:
        """A transaction for a bound contract function, its gas estimated at the latest
        block (a replacement must not be estimated against its own pending predecessor)
        with headroom for what changes by the block it lands in."""
        async def build(w3: AsyncWeb3) -> Any:
            gas = await function(w3).estimate_gas({"from": sender})
            return await function(w3).build_transaction(
                {"from": sender, "chainId": self.chain_id, "gas": with_headroom(gas)})
        return dict(await self.pool.on_provider(what, build))


    async def revert_reason(self, what: str, function: Callable[[AsyncWeb3], Any], sender: str,
                            block: str = "pending") -> str | None:
        """The revert reason of a bound contract function called by ``sender`` at
        ``block``, or ``None`` if it would pass (a revert is an answer, not a provider
        failure: no failover)."""
        try:
            await self.pool.on_provider(
                what, lambda w3: function(w3).call({"from": sender}, block_identifier=block),
                is_answer=lambda e: isinstance(e, ContractLogicError))
        except ContractLogicError as e:
            return str(e)
        return None


def with_headroom(gas: int) -> int:
    """Gas for a transaction estimated at ``gas``: a quarter more, since what a call
    costs can depend on the block it lands in (interest accrued since the last block,
    a checkpoint written for the first time), and unused gas is refunded."""
    return gas * 5 // 4


def nonce_used(error: Exception) -> bool:
    return isinstance(error, Web3Exception) and "nonce too low" in str(error).lower()
