"""Attesters' verdicts for tests that drive a submitter without attester processes: what
an honest attester that reproduced ``attestation`` would publish."""

from __future__ import annotations

from collections.abc import Iterable

from eth_account.signers.local import LocalAccount

from relayer.delivery.gathering import SignatureBook
from relayer.delivery.signing import sign_digest
from wire.eip712 import refusal_digest
from wire.hexstr import from_hex, to_hex
from wire.records import Attestation, ChainSignature, Verdict


def signed(account: LocalAccount, a: Attestation) -> Verdict:
    return Verdict(trader=a.trader, sequence=a.sequence, attester=account.address.lower(),
                   signatures=tuple(ChainSignature(
                       chain_id=c.chain_id, digest=c.digest,
                       signature=to_hex(sign_digest(account, from_hex(c.digest)).signature))
                       for c in a.chains))


def refused(account: LocalAccount, a: Attestation, why: str) -> Verdict:
    digest = refusal_digest(from_hex(a.trader), a.sequence, (why,))
    return Verdict(trader=a.trader, sequence=a.sequence, attester=account.address.lower(),
                   refused=(why,),
                   refusal_signature=to_hex(sign_digest(account, digest).signature))


def book_of(verdicts: Iterable[Verdict]) -> SignatureBook:
    book = SignatureBook()
    for v in verdicts:
        book.add(v)
    return book
