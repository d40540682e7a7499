"""SettlementService over a fake settler (the narrow edge): signatures gathered to the
source's threshold from real attester verdicts, a halted chain waits, stages recorded
for node status, a finished order not run again."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from eth_account import Account

from relayer.delivery.gathering import SignatureBook
from relayer.delivery.signing import sign_digest
from relayer.settlement.service import AWAITING, SettlementService, SettlementStore
from relayer.settlement.settler import Progress, Stage
from wire.eip712 import typed_data_digest
from wire.hexstr import from_hex, to_hex
from wire.records import ChainSignature, SettlementOrder, Verdict

SIGNERS = sorted((Account.create() for _ in range(3)), key=lambda a: int(a.address, 16))
ORACLES = {1: "0x" + "0a" * 20, 2: "0x" + "0b" * 20}
ORDER = SettlementOrder(trader="0x" + "ab" * 20, nonce=1, src_chain=2, src_vault="0x" + "b1" * 20,
                        src_venue="0x" + "b2" * 20, dst_chain=1, dst_vault="0x" + "a1" * 20,
                        dst_venue="0x" + "a2" * 20, amount=500, expiry=2**40, sequence=7)


class FakeSettler:
    def __init__(self, stages: list[Stage]) -> None:
        self.stages = stages
        self.calls: list[list[bytes]] = []

    async def step(self, order: SettlementOrder, signatures: list[bytes]) -> Progress:
        self.calls.append(signatures)
        return Progress(order, self.stages.pop(0), "", "0x" + "11" * 32)


async def signer_set() -> tuple[list[str], int]:
    return [s.address.lower() for s in SIGNERS], 2


def verdict(i: int, order: SettlementOrder = ORDER) -> Verdict:
    digest = typed_data_digest(2, from_hex(ORACLES[2]), order.struct_hash())
    signed = sign_digest(SIGNERS[i], digest)
    return Verdict(trader=ORDER.trader, sequence=7, attester=SIGNERS[i].address.lower(),
                   signatures=(ChainSignature(chain_id=2, digest=to_hex(digest),
                                              signature=to_hex(signed.signature)),))


def service(tmp_path: Path, settler: FakeSettler, book: SignatureBook,
            halted: dict[int, str] | None = None) -> SettlementService:
    return SettlementService(settler, book, ORACLES, {1: signer_set, 2: signer_set},  # type: ignore[arg-type]
                             SettlementStore(tmp_path / "s.json"), signature_wait_s=0.2,
                             poll_s=0.01, halted=halted)


def test_signatures_to_the_threshold_then_stages_to_the_end_once(tmp_path: Path) -> None:
    book = SignatureBook()
    for i in (0, 1):
        assert book.add(verdict(i))
    settler = FakeSettler([Stage.ISSUED, Stage.DEBITED, Stage.CREDITED])
    s = service(tmp_path, settler, book)
    asyncio.run(s.handle(ORDER))
    assert len(settler.calls) == 3 and all(len(c) == 2 for c in settler.calls)
    entry = SettlementStore(tmp_path / "s.json").get(f"{ORDER.trader}:1")
    assert entry is not None and entry.stage == "credited" and entry.amount == 500
    asyncio.run(s.handle(ORDER))  # redelivered: nothing run again
    assert len(settler.calls) == 3


def test_too_few_signatures_wait_visibly_and_expire_with_the_order(tmp_path: Path) -> None:
    expiring = ORDER.model_copy(update={"expiry": int(time.time()) + 2})
    book = SignatureBook()
    assert book.add(verdict(0, expiring))
    settler = FakeSettler([])
    s = service(tmp_path, settler, book)
    seen: list[str] = []

    def look() -> None:
        entry = s.store.get(f"{ORDER.trader}:1")
        if entry is not None and entry.stage not in seen:
            seen.append(entry.stage)
            if entry.stage == AWAITING:
                assert entry.reason.startswith("1 of 2 signed"), entry.reason

    async def run() -> None:
        task = asyncio.create_task(s.handle(expiring))
        while not task.done():
            look()
            await asyncio.sleep(0.01)
        look()
    asyncio.run(run())
    assert seen == [AWAITING, "expired"] and not settler.calls


def test_a_halted_chain_holds_every_settlement_touching_it(tmp_path: Path) -> None:
    book = SignatureBook()
    for i in (0, 1):
        book.add(verdict(i))
    halted = {2: "reorg deeper than finality"}
    settler = FakeSettler([Stage.CREDITED])
    s = service(tmp_path, settler, book, halted)

    async def run() -> None:
        task = asyncio.create_task(s.handle(ORDER))
        await asyncio.sleep(0.1)
        entry = s.store.get(f"{ORDER.trader}:1")
        assert entry is not None and entry.stage == "halted" and "reorg deeper" in entry.reason
        assert not settler.calls
        halted.clear()
        await asyncio.wait_for(task, 5)
    asyncio.run(run())
    assert s.store.get(f"{ORDER.trader}:1").stage == "credited"  # type: ignore[union-attr]
