"""The watchtower: what an attester does about an attestation a MarginOracle *accepted*.

The oracle's threshold of signers is the verifier; the watchtower is the brake behind
it, as Chainlink CCIP's Risk Management Network curses a lane. For each
``AttestationAccepted`` its own providers report (a quorum of them, at the newest block
that many hold), the attester asks:

- did it sign that digest itself? Then it reproduced it, and there is nothing to do;
- was the digest signed in the open, on ``risk.signature.v1``, by a threshold of the
  oracle's current signers? Then it came through the attesters, and this attester's
  refusal, if it refused, is a minority view (counted and visible, but no pause: one
  attester fooled by its providers must not stop a trader the others vouch for);
- otherwise the attestation reached the oracle around the attesters (keys used outside
  them): it pauses the trader on that chain with its own signature over the oracle's
  ``Pause`` type. When the accepted signatures include its *own* key, which it never
  used on that digest, its key is in other hands: it pauses the whole oracle.

Lifting a pause needs a threshold of the signers (``Unpause``); the watchtower never
lifts one. Decisions are pure (``Watch.judge``); ``Sentinel`` does the chain I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import Hash32
from web3 import AsyncWeb3

from attester import metrics
from attester.settings import AttesterChain
from attester.witness import NoQuorum, Quorum
from proofs.keccak import keccak
from relayer.delivery.gathering import authentic
from relayer.delivery.signing import sign_digest
from wire.eip712 import pause_digest
from wire.hexstr import from_hex, to_hex
from wire.records import Verdict

log = logging.getLogger(__name__)

ACCEPTED_TOPIC = to_hex(keccak(
    b"AttestationAccepted(address,uint64,int256,uint256,uint256,bytes32)"))
MAX_SIGNERS = 32  # MarginOracle.vy's


def selector(signature: str) -> bytes:
    return keccak(signature.encode())[:4]


SUBMIT = selector("submit((address,uint64,int256,uint256,uint256,uint256,uint32,bytes32,"
                  "uint64,uint64),bytes[])")
ATTESTATION_ABI = "(address,uint64,int256,uint256,uint256,uint256,uint32,bytes32,uint64,uint64)"


def submitted_signatures(calldata: bytes) -> list[bytes]:
    """The signatures of a transaction calling ``MarginOracle.submit`` directly (none
    known for a call through another contract)."""
    if calldata[:4] != SUBMIT:
        return []
    _, signatures = abi_decode([ATTESTATION_ABI, "bytes[]"], calldata[4:])
    return [bytes(s) for s in signatures]


@dataclass(frozen=True)
class Accepted:
    """One ``AttestationAccepted`` log, with the signers whose signatures the submitting
    transaction carried (recovered against ``digest``)."""

    chain_id: int
    block_number: int
    tx_hash: str
    trader: str
    sequence: int
    digest: str
    signed_by: tuple[str, ...]


@dataclass(frozen=True)
class Decision:
    """``scope``: ``None`` (let it stand), ``"trader"`` or ``"oracle"`` (pause it);
    ``outcome`` names the rule (a metric label), ``why`` says it in words."""

    scope: str | None
    outcome: str
    why: str


class OwnSignatures:
    """The digests this attester signed, one JSON line each in its state directory,
    written before the verdict is published: what it reproduced, whatever the log says
    in its name."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> set[tuple[int, str]]:
        if not self.path.exists():
            return set()
        return {(int(e["chain_id"]), str(e["digest"])) for e in
                map(json.loads, self.path.read_text().splitlines()) if e}

    def add(self, verdict: Verdict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            for s in verdict.signatures:
                f.write(json.dumps({"chain_id": s.chain_id, "digest": s.digest,
                                    "trader": verdict.trader,
                                    "sequence": verdict.sequence}) + "\n")
            f.flush()
            os.fsync(f.fileno())


@dataclass
class Watch:
    """What the attester knows of who signed what: its own signatures and every authentic
    signed verdict on the log."""

    address: str
    mine: set[tuple[int, str]] = field(default_factory=set)  # (chain id, digest)
    public: dict[tuple[int, str], set[str]] = field(default_factory=dict)  # → attesters

    def saw(self, verdict: Verdict) -> None:
        if verdict.refused or not authentic(verdict):
            return
        for s in verdict.signatures:
            self.public.setdefault((s.chain_id, s.digest), set()).add(verdict.attester)

    def signed(self, verdict: Verdict) -> None:
        """A verdict this attester just made."""
        for s in verdict.signatures:
            self.mine.add((s.chain_id, s.digest))
        self.saw(verdict)

    def judge(self, a: Accepted, signers: set[str], threshold: int) -> Decision:
        key = (a.chain_id, a.digest)
        if key in self.mine:
            return Decision(None, "reproduced", "reproduced by this attester")
        if self.address in a.signed_by:
            return Decision("oracle", "paused_oracle",
                            f"this attester's key signed {a.digest} in {a.tx_hash}, which "
                            f"this attester never signed: the key is in other hands")
        vouched = self.public.get(key, set()) & signers
        if len(vouched) >= threshold:
            return Decision(None, "vouched",
                            f"signed on the log by {len(vouched)} of the threshold "
                            f"{threshold}; this attester did not reproduce it")
        return Decision("trader", "paused_trader",
                        f"accepted in block {a.block_number} ({a.tx_hash}) without this "
                        f"attester's reproduction and with {len(vouched)} of the threshold "
                        f"{threshold} signatures on the log")


class Sentinel:
    """Follows one chain's oracle through the attester's own providers and pauses what
    ``Watch`` says to, from the signer's account (which pays the gas)."""

    def __init__(self, chain: AttesterChain, quorum: Quorum, signer: LocalAccount,
                 watch: Watch, caught_up: Callable[[], Awaitable[None]],
                 poll_s: float = 0.2) -> None:
        self.chain = chain
        self.quorum = quorum
        self.signer = signer
        self.watch = watch
        self.caught_up = caught_up
        self.poll_s = poll_s
        self.oracle = AsyncWeb3.to_checksum_address(chain.oracle)
        self.next_block: int | None = None

    async def call(self, data: bytes, parse: Callable[[bytes], Any]) -> Any:
        return await self.quorum.agreed("eth_call", [{"to": self.oracle, "data": to_hex(data)},
                                                     "latest"],
                                        lambda r: parse(from_hex(r)))

    async def signer_set(self) -> tuple[set[str], int]:
        threshold = await self.call(selector("threshold()"),
                                    lambda b: abi_decode(["uint256"], b)[0])
        signers = set()
        for i in range(MAX_SIGNERS):
            try:
                signers.add(await self.call(
                    selector("signers(uint256)") + abi_encode(["uint256"], [i]),
                    lambda b: abi_decode(["address"], b)[0].lower()))
            except NoQuorum:
                break  # past the end of the DynArray (every provider reverts)
        return signers, int(threshold)

    async def newest_held(self) -> int | None:
        """The newest block at least ``quorum`` providers have."""
        heads = await self.quorum.answers("eth_blockNumber", [], lambda r: int(r, 16))
        held = sorted((h for h in heads.values() if not isinstance(h, Exception)), reverse=True)
        return held[self.chain.quorum - 1] if len(held) >= self.chain.quorum else None

    async def accepted(self, first: int, last: int) -> list[Accepted]:
        logs = await self.quorum.agreed("eth_getLogs", [{
            "fromBlock": hex(first), "toBlock": hex(last), "address": self.oracle,
            "topics": [ACCEPTED_TOPIC]}])
        found = []
        for entry in logs:
            trader = "0x" + entry["topics"][1][-40:]
            sequence, _, _, _, digest = abi_decode(
                ["uint64", "int256", "uint256", "uint256", "bytes32"], from_hex(entry["data"]))
            tx = await self.quorum.agreed("eth_getTransactionByHash",
                                          [entry["transactionHash"]])
            signed_by = []
            for signature in submitted_signatures(from_hex(tx["input"])):
                try:
                    signed_by.append(Account._recover_hash(
                        Hash32(digest), signature=bytes(signature)).lower())
                except (ValueError, TypeError):
                    continue
            found.append(Accepted(self.chain.chain_id, int(entry["blockNumber"], 16),
                                  entry["transactionHash"], trader.lower(), int(sequence),
                                  to_hex(digest), tuple(signed_by)))
        return found

    async def pause(self, scope: str, trader: str) -> str:
        """Sign and broadcast a pause (``scope`` ``trader`` or ``oracle``) to every
        provider; the transaction hash, or why nothing was sent."""
        if scope == "oracle":
            if await self.call(selector("all_paused()"), lambda b: abi_decode(["bool"], b)[0]):
                return "already paused"
        elif await self.call(selector("is_paused(address)") + abi_encode(["address"], [trader]),
                             lambda b: abi_decode(["bool"], b)[0]):
            return "already paused"
        nonce = await self.call(selector("pause_nonce()"), lambda b: abi_decode(["uint256"], b)[0])
        who = None if scope == "oracle" else from_hex(trader)
        signature = sign_digest(self.signer, pause_digest(
            self.chain.chain_id, from_hex(self.chain.oracle), who, int(nonce))).signature
        if scope == "oracle":
            data = selector("pause_all(bytes)") + abi_encode(["bytes"], [signature])
        else:
            data = selector("pause(address,bytes)") + abi_encode(["address", "bytes"],
                                                                [trader, signature])
        account_nonce = await self.quorum.agreed(
            "eth_getTransactionCount", [self.signer.address, "pending"], lambda r: int(r, 16))
        gas_price = await self.quorum.agreed("eth_gasPrice", [], lambda r: int(r, 16))
        tx = {"to": self.oracle, "data": data, "value": 0, "gas": 200_000,
              "gasPrice": 2 * gas_price, "nonce": account_nonce, "chainId": self.chain.chain_id}
        raw = self.signer.sign_transaction(tx).raw_transaction
        sent = await self.quorum.answers("eth_sendRawTransaction", [to_hex(raw)], str)
        hashes = [h for h in sent.values() if not isinstance(h, Exception)]
        if not hashes:
            raise NoQuorum(self.chain.name, "eth_sendRawTransaction",
                           {u: str(e) for u, e in sent.items()}, disagreed=False)
        return hashes[0]

    async def step(self) -> None:
        last = await self.newest_held()
        if last is None:
            return
        if self.next_block is None:
            self.next_block = last + 1  # what was accepted before this start is history
            return
        if last < self.next_block:
            return
        found = await self.accepted(self.next_block, last)
        if found:
            await self.caught_up()  # every verdict on the log before now has been read
            signers, threshold = await self.signer_set()
        for a in found:
            decision = self.watch.judge(a, signers, threshold)
            metrics.WATCHED.labels(chain=self.chain.name, outcome=decision.outcome).inc()
            if decision.scope is None:
                log.info("accepted attestation stands", extra={
                    "chain": self.chain.name, "trader": a.trader, "sequence": a.sequence,
                    "reason": decision.why})
                continue
            sent = await self.pause(decision.scope, a.trader)
            log.warning("paused", extra={"chain": self.chain.name, "trader": a.trader,
                                         "sequence": a.sequence, "scope": decision.scope,
                                         "reason": decision.why, "tx": sent})
        self.next_block = last + 1

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.step()
            except NoQuorum as e:
                metrics.NO_QUORUM.labels(chain=self.chain.name).inc()
                log.warning("watch put off", extra={"chain": self.chain.name,
                                                     "reason": str(e)})
            except Exception:  # an answer it cannot use: logged, and the watch goes on
                log.exception("watch step failed", extra={"chain": self.chain.name})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll_s)
