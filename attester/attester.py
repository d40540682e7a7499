"""An attester's judgement: fold the log, and answer each proposed attestation with a
signature or a refusal.

The log's inputs (headers, books with their proofs, oracle rounds, reorgs) are folded by
the audit's own ``Auditor``, which re-verifies every proof against the state root of a
header whose RLP it re-hashes. The attester adds what an auditor of the log alone cannot
know: that the blocks named are the ones its own providers hold at those heights, final
on a quorum of them, and that the price rounds are the ``AnswerUpdated`` logs they hold
in those blocks (``attester.witness``). Then it recomputes the proposal with the same
reducers and engine, and signs each chain's EIP-712 digest only when the recomputed
record is the proposal byte for byte.

A proposal whose inputs the attester has not read yet (the topics are read side by
side, so its books or rounds may come a fetch later) is judged again after each fetch,
for ``ripen_s``; then it is refused with what is still wrong. A difference from its own
providers is refused at once. Each (trader, sequence) is answered once: verdicts this
signer published before a restart are read back first.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount

from attester.headers import DebitWatch
from attester.settings import AttesterSettings
from attester.watchtower import Watch
from attester.witness import NoQuorum, Witness
from engine import MarginParams
from relayer.delivery.signing import sign_digest
from relayer.delivery.submitter import local_digest
from streams.audit_report import LogRecord
from streams.replay import Auditor, differing_fields
from wire import topics
from wire.eip712 import refusal_digest, typed_data_digest
from wire.hexstr import from_hex, to_hex
from wire.records import Attestation, ChainSignature, RecordError, Verdict, decode

INPUTS = (topics.BLOCK_HEADER, topics.REORG, topics.POSITION_PROVEN, topics.PRICE, topics.VOL)


@dataclass
class Proposal:
    attestation: Attestation
    previous: Attestation | None
    partition: int       # its trader's partition (books and attestations share the key)
    first_seen: float    # monotonic


@dataclass(frozen=True)
class Judged:
    """The differences found (none: reproduced), and whether more of the log may still
    settle them."""

    differences: list[str]
    ripening: bool = False


class Attester:
    def __init__(self, settings: AttesterSettings, signer: LocalAccount, witness: Witness,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.signer = signer
        self.address = signer.address.lower()
        self.witness = witness
        self.clock = clock
        streams = settings.stream_settings()
        self.auditor = Auditor(streams, MarginParams(version=streams.params_version),
                               finality={c.chain_id: c.finality_blocks for c in settings.chains})
        # Per trader: the proposal before the last one, and the last one (the worker's
        # history, which the credit rules of the next one depend on).
        self.history: dict[str, tuple[Attestation | None, Attestation]] = {}
        self.answered: set[tuple[str, int]] = set()
        self.pending: dict[tuple[str, int], Proposal] = {}
        self.watch = Watch(self.address)  # who signed what, for the watchtower
        self.signed_before: set[tuple[str, int]] = set()
        self.debits = DebitWatch()  # signed settlement orders whose debit awaits a vouch

    def answered_before(self, raw: bytes | None) -> None:
        """A verdict from the log: this signer's own ones are not given again."""
        try:
            verdict = decode(Verdict, raw)
        except RecordError:
            return
        if verdict.attester == self.address:
            self.answered.add((verdict.trader, verdict.sequence))
            if verdict.signatures:
                self.signed_before.add((verdict.trader, verdict.sequence))
        # Its own verdicts count as its own only from its state file (a stolen key could
        # write one to the log in its name): here they are one more public voice.
        self.watch.saw(verdict)

    def fold(self, record: LogRecord) -> None:
        if record.topic in INPUTS:
            self.auditor.feed(record)
        elif record.topic == topics.SIGNATURE:
            self.answered_before(record.value)
        elif record.topic == topics.ATTESTATION:
            self.propose(record)

    def propose(self, record: LogRecord) -> None:
        try:
            a = decode(Attestation, record.value)
        except RecordError:
            return  # dead-lettered by the submitters; nothing to sign
        before, last = self.history.get(a.trader, (None, None))
        # A sequence emitted again (a worker killed before its state was written) follows
        # the same attestation as its first copy.
        previous = before if last is not None and a.sequence == last.sequence else last
        self.history[a.trader] = (previous, a)
        key = (a.trader, a.sequence)
        if key in self.signed_before:
            for order in a.settlements:  # signed before a restart: still to vouch for
                self.debits.watch(order)
        if key in self.answered or key in self.pending or a.valid_until < time.time():
            return  # answered before, or past signing for
        self.pending[key] = Proposal(a, previous, record.partition, self.clock())

    async def decide(self, read_through: Callable[[str, int], int]) -> list[Verdict]:
        """A verdict on every pending proposal that is ripe, or past ``ripen_s``.
        ``read_through(topic, partition)`` is the next offset the attester will read."""
        verdicts = []
        for key, p in list(self.pending.items()):
            judged = await self.judge(p, read_through)
            if judged.ripening and self.clock() - p.first_seen < self.settings.ripen_s:
                continue
            del self.pending[key]
            self.answered.add(key)
            verdicts.append(self.sign(p.attestation) if not judged.differences
                            else self.refuse(p.attestation, judged.differences))
        return verdicts

    async def judge(self, p: Proposal, read_through: Callable[[str, int], int]) -> Judged:
        a, audit = p.attestation, self.auditor
        expected = (p.previous.sequence if p.previous else 0) + 1
        if a.sequence != expected:
            return Judged([f"sequence {a.sequence} follows {expected - 1}"])
        missing = [e for e in a.book_events if e not in audit.books]
        if missing:
            return Judged([f"books not in the log: {missing}"], ripening=True)
        if read_through(topics.POSITION_PROVEN, p.partition) <= a.book_offset:
            return Judged([f"books read up to offset {a.book_offset}: not yet"], ripening=True)
        found = audit.check_books(a) + audit.check_risk_day(a)
        price_found, quotes = audit.price_inputs(a)
        found += price_found
        for event_id in a.book_events:
            seen = audit.seen[event_id]
            found += audit.headers.check_block(f"book {event_id}", seen.chain_id,
                                               seen.block_hash, seen.block_number,
                                               seen.state_root)
        if a.risk is not None:
            through = audit.prices.days.closed_through([q.asset for q in a.prices])
            if through is None or through < a.risk.day:
                found.append(f"risk day {a.risk.day} not closed in the log read")
        if found:
            return Judged(found, ripening=True)
        try:
            own = [await self.witness.block(f"book {e}", audit.seen[e].chain_id,
                                            audit.seen[e].block_number, audit.seen[e].block_hash)
                   for e in a.book_events]
            own += [await self.witness.price_round(f"round {q.asset} {q.source}#{q.round_id}", q)
                    for q in quotes]
        except NoQuorum as e:
            return Judged([str(e)], ripening=not e.disagreed)
        differences = [d for d in own if d is not None]
        if differences:
            return Judged(differences)
        recomputed = audit.recompute([(a, p.previous)])[0]
        if recomputed is None:
            return Judged(["recomputed: nothing moved, nothing to attest"])
        if recomputed != a:
            return Judged([f"recomputed differs in {f}: proposed {getattr(a, f)!r}, "
                           f"reproduced {getattr(recomputed, f)!r}"
                           for f in differing_fields(a, recomputed)])
        return Judged([])

    def sign(self, a: Attestation) -> Verdict:
        signatures = []
        for credit in a.chains:
            digest = local_digest(a, credit)  # the recomputed record's, equal by now
            signed = sign_digest(self.signer, from_hex(digest))
            signatures.append(ChainSignature(chain_id=credit.chain_id, digest=digest,
                                             signature=to_hex(signed.signature)))
        oracles = {c.chain_id: c.oracle for c in a.chains}
        for order in a.settlements:  # reproduced with the record: the source's digest
            digest = to_hex(typed_data_digest(order.src_chain, from_hex(oracles[order.src_chain]),
                                              order.struct_hash()))
            signed = sign_digest(self.signer, from_hex(digest))
            signatures.append(ChainSignature(chain_id=order.src_chain, digest=digest,
                                             signature=to_hex(signed.signature)))
            self.debits.watch(order)
        verdict = Verdict(trader=a.trader, sequence=a.sequence, attester=self.address,
                          signatures=tuple(signatures), decided_at=int(time.time()))
        self.watch.signed(verdict)
        return verdict

    def refuse(self, a: Attestation, differences: list[str]) -> Verdict:
        digest = refusal_digest(from_hex(a.trader), a.sequence, differences)
        return Verdict(trader=a.trader, sequence=a.sequence, attester=self.address,
                       refused=tuple(differences),
                       refusal_signature=to_hex(sign_digest(self.signer, digest).signature),
                       decided_at=int(time.time()))
