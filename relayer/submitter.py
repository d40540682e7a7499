"""One submitter per satellite chain: attestations in, MarginOracle transactions out.

Each delivery runs prepare → submit → confirm and ends in an explicit ``Result``
(delivered / dropped / retry); normal outcomes are results, not exceptions. A record
whose digest this node does not reproduce is dead-lettered: it is never signed.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRecord
from eth_account.signers.local import LocalAccount
from web3 import AsyncWeb3
from web3.exceptions import ContractLogicError, TimeExhausted, Web3Exception

from relayer.chain import ChainClient
from relayer.contracts import compiled
from relayer.errors import RpcError
from relayer.kafka import Publisher
from relayer.retries import InFlight, InFlightStore, RetryStore, with_retries
from relayer.signing import sign_digest, threshold_signatures
from streams import topics
from streams.attestation import attestation_digest
from streams.records import Attestation, ChainCredit, Delivery, DeliveryStatus

log = logging.getLogger(__name__)


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    DROPPED = "dropped"
    RETRY = "retrying"


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    reason: str = ""
    tx_hash: str | None = None


def local_digest(attestation: Attestation, credit: ChainCredit) -> str:
    digest = attestation_digest(
        chain_id=credit.chain_id, oracle=bytes.fromhex(credit.oracle[2:]),
        trader=bytes.fromhex(attestation.trader[2:]), sequence=attestation.sequence,
        equity_wad=attestation.equity_wad,
        maintenance_margin_wad=attestation.maintenance_margin_wad,
        initial_margin_wad=attestation.initial_margin_wad,
        free_collateral_wad=credit.free_collateral_wad,
        params_version=attestation.params_version,
        source_blocks_hash=bytes.fromhex(attestation.source_blocks_hash[2:]),
        valid_until=attestation.valid_until,
    )
    return "0x" + digest.hex()


def oracle_struct(attestation: Attestation, credit: ChainCredit) -> tuple[Any, ...]:
    return (
        AsyncWeb3.to_checksum_address(attestation.trader), attestation.sequence,
        attestation.equity_wad, attestation.maintenance_margin_wad,
        attestation.initial_margin_wad, credit.free_collateral_wad, attestation.params_version,
        bytes.fromhex(attestation.source_blocks_hash[2:]), attestation.valid_until,
    )


class Submitter:
    def __init__(self, client: ChainClient, sender: LocalAccount, signers: list[LocalAccount],
                 threshold: int, publisher: Publisher, max_attempts: int,
                 retries: RetryStore, in_flight: InFlightStore | None = None,
                 halted: Mapping[int, str] | None = None) -> None:
        self.client = client
        self.chain_id = client.settings.chain_id
        self.sender = sender
        self.signers = signers
        self.threshold = threshold
        self.publisher = publisher
        self.max_attempts = max_attempts
        self.retries = retries
        self.halted = halted if halted is not None else {}
        self.in_flight = in_flight or InFlightStore(
            retries.path.with_name(f"in-flight-{self.chain_id}.json"))
        self.oracle = client.w3.eth.contract(
            address=AsyncWeb3.to_checksum_address(client.settings.oracle),
            abi=compiled("MarginOracle").abi,
        )

    async def handle(self, attestation: Attestation, message: ConsumerRecord) -> None:
        credit = next((c for c in attestation.chains if c.chain_id == self.chain_id), None)
        if credit is None:
            return
        if local_digest(attestation, credit) != credit.digest:
            await self.publisher.dead_letter(
                message, f"digest for chain {self.chain_id} does not match the attested fields")
            return
        result = Result(Outcome.RETRY)

        async def attempt() -> tuple[bool, str]:
            nonlocal result
            result = await self.deliver(attestation, credit)
            if result.outcome is Outcome.RETRY:
                log.warning("delivery retry", extra={"chain": self.chain_id,
                                                      "reason": result.reason})
            return result.outcome is not Outcome.RETRY, result.reason

        key = f"{attestation.trader}:{attestation.sequence}"
        finished, reason = await with_retries(key, attempt, self.retries, self.max_attempts)
        if not finished:
            result = Result(Outcome.RETRY, reason, result.tx_hash)
        status: DeliveryStatus = (
            "dead_lettered" if result.outcome is Outcome.RETRY
            else "delivered" if result.outcome is Outcome.DELIVERED else "dropped"
        )
        await self.publisher.publish(topics.DELIVERY, attestation.trader, Delivery(
            trader=attestation.trader, sequence=attestation.sequence, chain_id=self.chain_id,
            status=status, reason=result.reason, tx_hash=result.tx_hash,
        ))

    async def deliver(self, attestation: Attestation, credit: ChainCredit) -> Result:
        key = f"{attestation.trader}:{attestation.sequence}"
        if self.chain_id in self.halted:
            # This chain's history changed below finality: nothing more is attested on it
            # until an operator has looked (the delivery waits, visibly, in its retries).
            return Result(Outcome.RETRY, f"chain halted: {self.halted[self.chain_id]}")
        try:
            prepared = await self.prepare(attestation, credit)
            if isinstance(prepared, Result):
                # Nothing (more) to send: a transaction still in flight for it, if any,
                # landed (the oracle holds the sequence) or no longer matters.
                self.in_flight.put(key, None)
                return prepared
            tx_hash = await self.submit(key, prepared)
            result = await self.confirm(tx_hash)
            if result.outcome is not Outcome.RETRY:
                self.in_flight.put(key, None)
            return result
        except (RpcError, Web3Exception, OSError, TimeoutError) as e:
            return Result(Outcome.RETRY, f"{type(e).__name__}: {e}")

    async def prepare(self, attestation: Attestation, credit: ChainCredit) -> Any:
        """The contract call to send, or a ``Result`` when there is nothing to send."""
        latest = await self.oracle.functions.latest(
            AsyncWeb3.to_checksum_address(attestation.trader)).call()
        if latest[1] >= attestation.sequence:
            return Result(Outcome.DROPPED, f"oracle already holds sequence {latest[1]}")
        if attestation.valid_until < time.time():
            return Result(Outcome.DROPPED, "attestation expired before delivery")
        digest = bytes.fromhex(credit.digest[2:])
        signatures = threshold_signatures([sign_digest(s, digest) for s in self.signers],
                                          self.threshold)
        call = self.oracle.functions.submit(oracle_struct(attestation, credit), signatures)
        try:
            # Simulate right before sending so a revert costs nothing.
            await call.call({"from": self.sender.address})
        except ContractLogicError as e:
            return Result(Outcome.DROPPED, f"simulation reverted: {e}")
        return call

    async def submit(self, key: str, call: Any) -> str:
        """Send ``call``; a delivery already in flight is replaced with the same nonce
        and fees of max(1.1 × the last, a fresh estimate), capped: a stuck transaction
        is outbid, never queued behind."""
        w3 = self.client.w3
        tx = await call.build_transaction({"from": self.sender.address,
                                           "chainId": self.chain_id})
        cap = int(self.client.settings.max_fee_cap_gwei * 10**9)
        previous = self.in_flight.get(key)
        if previous is None:
            nonce = int(await w3.eth.get_transaction_count(self.sender.address, "pending"))
            max_fee, tip = int(tx["maxFeePerGas"]), int(tx["maxPriorityFeePerGas"])
        else:
            nonce = previous.nonce
            max_fee = max(-(-previous.max_fee_wei * 11 // 10), int(tx["maxFeePerGas"]))
            tip = max(-(-previous.priority_fee_wei * 11 // 10), int(tx["maxPriorityFeePerGas"]))
        max_fee, tip = min(max_fee, cap), min(tip, cap)
        if previous is not None and max_fee <= previous.max_fee_wei:
            # At the cap: wait for the transaction already out rather than re-send it.
            return previous.tx_hash
        tx.update({"nonce": nonce, "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip})
        signed = self.sender.sign_transaction(tx)
        tx_hash = "0x" + signed.hash.hex().removeprefix("0x")
        self.in_flight.put(key, InFlight(nonce, max_fee, tip, tx_hash))
        try:
            await w3.eth.send_raw_transaction(signed.raw_transaction)
        except Web3Exception as e:
            if "nonce too low" in str(e).lower():
                # The nonce was used: by this delivery (the oracle says so next time) or
                # by another; either way a fresh nonce next attempt.
                self.in_flight.put(key, None)
            raise
        log.info("delivery sent", extra={"chain": self.chain_id, "tx": tx_hash,
                                         "nonce": nonce, "replaces": previous is not None})
        return tx_hash

    async def confirm(self, tx_hash: str) -> Result:
        try:
            receipt = await self.client.w3.eth.wait_for_transaction_receipt(
                tx_hash, timeout=self.client.settings.confirm_timeout_s,  # type: ignore[arg-type]
                poll_latency=0.2)
        except TimeExhausted:
            return Result(Outcome.RETRY, "receipt not seen within "
                          f"{self.client.settings.confirm_timeout_s:g} s", tx_hash)
        if receipt["status"] != 1:
            return Result(Outcome.DROPPED, "transaction reverted", tx_hash)
        return Result(Outcome.DELIVERED, "", tx_hash)
