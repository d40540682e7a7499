"""Gathering the attesters' verdicts (``risk.signature.v1``) for the submitters.

The node holds no signer key: each attester signs what it reproduced itself and
publishes a ``Verdict``. The book keeps every verdict per (trader, sequence) and hands a
submitter the signatures it needs for one chain's digest once the threshold of the
oracle's current signer set has signed it, or says early that it never will (too many
refused). A verdict is kept only if its signatures (or its refusal's) recover to the
attester it names, and counted only for one of the oracle's signers and the digest
being delivered: anyone can write to the topic, so a verdict is evidence to check, not
authority.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from eth_account import Account
from eth_typing import Hash32

from relayer.delivery.signing import Signature
from wire.eip712 import refusal_digest
from wire.hexstr import from_hex
from wire.records import Verdict


@dataclass(frozen=True)
class Gathered:
    """Where one chain's digest stands: the valid signatures, the refusals (attester →
    differences), and the signers not yet heard from."""

    signatures: list[Signature]
    refused: dict[str, tuple[str, ...]]
    silent: list[str]
    threshold: int

    @property
    def complete(self) -> bool:
        return len(self.signatures) >= self.threshold

    @property
    def unreachable(self) -> bool:
        return len(self.signatures) + len(self.silent) < self.threshold


def recovers_to(digest: bytes, signature: bytes, signer: str) -> bool:
    try:
        recovered = Account._recover_hash(Hash32(digest), signature=signature)
    except (ValueError, TypeError):
        return False
    return bool(recovered.lower() == signer)


def authentic(verdict: Verdict) -> bool:
    """Does every signature of ``verdict`` (or its refusal's) recover to its attester?"""
    if verdict.refused:
        digest = refusal_digest(from_hex(verdict.trader), verdict.sequence, verdict.refused)
        return recovers_to(digest, from_hex(verdict.refusal_signature), verdict.attester)
    return all(recovers_to(from_hex(s.digest), from_hex(s.signature), verdict.attester)
               for s in verdict.signatures)


@dataclass
class SignatureBook:
    """Every authentic verdict read so far, by (trader, sequence) and attester; ``add``
    wakes the submitters waiting in ``gather``."""

    verdicts: dict[tuple[str, int], dict[str, list[Verdict]]] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, verdict: Verdict) -> bool:
        """Keep ``verdict`` if it is authentic (else ``False``: a forgery, dropped)."""
        if not authentic(verdict):
            return False
        held = self.verdicts.setdefault((verdict.trader, verdict.sequence), {})
        held.setdefault(verdict.attester, []).append(verdict)
        # Every waiter holds the event of its count; a new one serves the next counts.
        self.changed.set()
        self.changed = asyncio.Event()
        return True

    def of(self, trader: str, sequence: int) -> dict[str, Verdict]:
        """Each attester's first verdict on (trader, sequence)."""
        return {a: v[0] for a, v in self.verdicts.get((trader, sequence), {}).items()}

    def count(self, trader: str, sequence: int, chain_id: int, digest: str,
              signers: list[str], threshold: int) -> Gathered:
        """A registered attester has signed if any of its verdicts signs ``digest`` on
        ``chain_id`` (a signature cannot be taken back), else refused if it answered at
        all (a refusal, or a signature of another digest), else it is silent."""
        signed, refused = [], {}
        registered = sorted({s.lower() for s in signers})
        by_attester = self.verdicts.get((trader, sequence), {})
        for attester in registered:
            verdicts = by_attester.get(attester, [])
            mine = [s for v in verdicts for s in v.signatures
                    if (s.chain_id, s.digest) == (chain_id, digest)]
            if mine:
                signed.append(Signature(attester, from_hex(mine[0].signature)))
            elif verdicts:
                refused[attester] = next((v.refused for v in verdicts if v.refused),
                                         ("signed another digest for this sequence",))
        answered = {s.signer for s in signed} | set(refused)
        silent = [s for s in registered if s not in answered]
        return Gathered(signed, refused, silent, threshold)

    async def gather(self, trader: str, sequence: int, chain_id: int, digest: str,
                     signers: list[str], threshold: int, wait_s: float) -> Gathered:
        """The count once it is complete or unreachable, or after ``wait_s``."""
        deadline = time.monotonic() + wait_s
        while True:
            changed = self.changed
            counted = self.count(trader, sequence, chain_id, digest, signers, threshold)
            left = deadline - time.monotonic()
            if counted.complete or counted.unreachable or left <= 0:
                return counted
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout=left)
