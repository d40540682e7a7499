"""The submitter over a fake ``OracleWriter``: prepare → submit → confirm, replacement
with the same nonce and higher fees up to the cap, and the outcomes that send nothing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from eth_utils import to_checksum_address

from relayer.delivery.gathering import SignatureBook
from relayer.delivery.outcome import Outcome, Reason, Result
from relayer.delivery.retries import InFlightStore, RetryStore
from relayer.delivery.sending import Receipt
from relayer.delivery.submitter import Submitter, local_digest
from relayer.errors import NonceTooLow, RpcError
from relayer.statedir import StateDir
from tests.support.verdicts import book_of, refused, signed
from wire import topics
from wire.records import Attestation, ChainCredit, Delivery, Record

CHAIN = 41090
ORACLE = "0x" + "aa" * 20
GWEI = 10**9


class FakeOracle:
    chain_id = CHAIN
    name = "fake"
    confirm_timeout_s = 1.0

    def __init__(self, cap_gwei: int = 500) -> None:
        self.attesters = sorted((Account.create() for _ in range(3)),
                                key=lambda a: int(a.address, 16))
        self.threshold = 2
        self.max_fee_cap_wei = cap_gwei * GWEI
        self.held = 0
        self.revert: str | None = None
        self.status: int | None = 1
        self.fee_gwei = 10
        self.nonce = 7
        self.sent: list[tuple[int, bytes]] = []
        self.used_nonce: int | None = None

    async def latest_sequence(self, trader: str) -> int:
        return self.held

    async def signer_set(self) -> tuple[list[str], int]:
        return [a.address.lower() for a in self.attesters], self.threshold

    async def simulate(self, call: Any, sender: str) -> str | None:
        self.simulated = call
        return self.revert

    async def build(self, call: Any, sender: str) -> dict[str, Any]:
        return {"to": to_checksum_address(ORACLE), "value": 0, "gas": 200_000, "data": "0x",
                "chainId": CHAIN, "maxFeePerGas": self.fee_gwei * GWEI,
                "maxPriorityFeePerGas": GWEI}

    async def pending_nonce(self, address: str) -> int:
        return self.nonce

    async def send_raw(self, raw: bytes, nonce: int) -> None:
        if nonce == self.used_nonce:
            raise NonceTooLow(self.name, nonce, "nonce too low")
        self.sent.append((nonce, raw))

    async def receipt(self, tx_hash: str, timeout_s: float) -> Receipt | None:
        return None if self.status is None else Receipt(self.status, 21_000 * GWEI)

    async def balance(self, address: str) -> int:
        return 10**18


class FakeSink:
    def __init__(self) -> None:
        self.published: list[tuple[str, str, Record]] = []
        self.refused: list[tuple[str, str]] = []

    async def publish(self, topic: str, key: str, record: Record) -> None:
        self.published.append((topic, key, record))

    async def refuse(self, topic: str, key: bytes | None, value: bytes | None, reason: str,
                     partition: int | None = None, offset: int | None = None,
                     kind: str = "schema") -> None:
        self.refused.append((topic, reason))


# One clock for every attestation a test builds: the same call a second later must be the
# same attestation, with the digest the signature book holds (a test crossing a second
# boundary got a book signed over other figures and a dropped delivery).
NOW = int(time.time())


def attestation(valid_for_s: int = 3600, sequence: int = 1) -> Attestation:
    credit = ChainCredit(chain_id=CHAIN, oracle=ORACLE, free_collateral_wad=5 * 10**21,
                         digest="0x" + "00" * 32)
    a = Attestation(
        trader="0x" + "ab" * 20, sequence=sequence, equity_wad=10**22,
        maintenance_margin_wad=10**20, initial_margin_wad=10**20, health=10.0,
        isolated_margin_wad=10**20, params_version=1, source_blocks=(),
        source_blocks_hash="0x" + "42" * 32, issued_at=NOW,
        valid_until=NOW + valid_for_s, chains=(credit,))
    signed = credit.model_copy(update={"digest": local_digest(a, credit)})
    return a.model_copy(update={"chains": (signed,)})


def submitter(oracle: FakeOracle, state: Path, sink: FakeSink | None = None,
              book: SignatureBook | None = None, wait_s: float = 30.0) -> Submitter:
    stores = StateDir(state)
    if book is None:  # every attester signed every attestation
        book = book_of(signed(acct, a) for acct in oracle.attesters
                       for a in (attestation(), attestation(valid_for_s=-1)))
    return Submitter(oracle, Account.create(), book, sink or FakeSink(), 3,
                     RetryStore(stores.deliveries(CHAIN)), InFlightStore(stores.in_flight(CHAIN)),
                     signature_wait_s=wait_s)


def deliver(oracle: FakeOracle, state: Path, a: Attestation | None = None,
            book: SignatureBook | None = None, wait_s: float = 30.0) -> Result:
    a = a or attestation()
    if book is None:
        book = book_of(signed(acct, a) for acct in oracle.attesters)
    return asyncio.run(submitter(oracle, state, book=book, wait_s=wait_s).deliver(a, a.chains[0]))


def test_a_confirmed_delivery_is_sent_once_with_the_pending_nonce(tmp_path: Path) -> None:
    oracle = FakeOracle()
    result = deliver(oracle, tmp_path)
    assert (result.outcome, result.cause) == (Outcome.DELIVERED, Reason.CONFIRMED)
    assert [n for n, _ in oracle.sent] == [7]
    assert InFlightStore(StateDir(tmp_path).in_flight(CHAIN)).entries == {}


def test_a_stuck_delivery_is_replaced_with_its_nonce_and_higher_fees(tmp_path: Path) -> None:
    oracle = FakeOracle()
    oracle.status = None
    first = deliver(oracle, tmp_path)
    oracle.nonce = 8  # meanwhile the account sent something else: the stuck nonce stays
    second = deliver(oracle, tmp_path)  # a fresh submitter: only the state files remain
    assert first.outcome is second.outcome is Outcome.RETRY
    assert first.cause is Reason.NOT_CONFIRMED and second.tx_hash != first.tx_hash
    one, two = (TypedTransaction.from_bytes(raw).as_dict() for _, raw in oracle.sent)
    assert one["nonce"] == two["nonce"] == 7
    assert two["maxFeePerGas"] == 11 * GWEI == one["maxFeePerGas"] * 11 // 10
    assert two["maxPriorityFeePerGas"] == -(-one["maxPriorityFeePerGas"] * 11 // 10)
    [(_, in_flight)] = InFlightStore(StateDir(tmp_path).in_flight(CHAIN)).entries.items()
    assert (in_flight.nonce, in_flight.tx_hash) == (7, second.tx_hash)


def test_at_the_fee_cap_the_transaction_out_is_awaited_not_sent_again(tmp_path: Path) -> None:
    oracle = FakeOracle(cap_gwei=10)
    oracle.status = None
    first = deliver(oracle, tmp_path)
    second = deliver(oracle, tmp_path)
    assert len(oracle.sent) == 1 and second.tx_hash == first.tx_hash


def test_what_needs_no_transaction_is_dropped_with_its_reason(tmp_path: Path) -> None:
    held = FakeOracle()
    held.held = 1
    assert deliver(held, tmp_path / "a").cause is Reason.ALREADY_HELD
    expired = deliver(FakeOracle(), tmp_path / "b", attestation(valid_for_s=-1))
    assert expired.cause is Reason.EXPIRED
    reverting = FakeOracle()
    reverting.revert = "execution reverted: stale"
    result = deliver(reverting, tmp_path / "c")
    assert (result.outcome, result.cause) == (Outcome.DROPPED, Reason.SIMULATION_REVERTED)
    assert result.reason == "simulation reverted: execution reverted: stale"
    assert not held.sent and not reverting.sent


def test_a_used_nonce_is_forgotten_so_the_next_attempt_takes_a_fresh_one(tmp_path: Path) -> None:
    oracle = FakeOracle()
    oracle.used_nonce = 7
    result = deliver(oracle, tmp_path)
    assert (result.outcome, result.cause) == (Outcome.RETRY, Reason.CHAIN_ERROR)
    assert "NonceTooLow" in result.reason
    assert InFlightStore(StateDir(tmp_path).in_flight(CHAIN)).entries == {}


def test_a_chain_error_is_a_retry_not_a_crash(tmp_path: Path) -> None:
    class Down(FakeOracle):
        async def latest_sequence(self, trader: str) -> int:
            raise RpcError("fake", "latest", "connection refused")

    result = deliver(Down(), tmp_path)
    assert (result.outcome, result.cause) == (Outcome.RETRY, Reason.CHAIN_ERROR)


def test_a_digest_this_node_does_not_reproduce_is_dead_lettered_unsigned(tmp_path: Path) -> None:
    oracle, sink = FakeOracle(), FakeSink()
    a = attestation()
    forged = a.model_copy(update={"equity_wad": a.equity_wad * 2})
    message = SimpleNamespace(topic=topics.ATTESTATION, key=b"k", value=b"v", partition=0,
                              offset=3)
    asyncio.run(submitter(oracle, tmp_path, sink).handle(forged, message))  # type: ignore[arg-type]
    assert sink.refused == [(topics.ATTESTATION, f"digest for chain {CHAIN} does not match "
                                                 "the attested fields")]
    assert not oracle.sent and not sink.published
    asyncio.run(submitter(oracle, tmp_path, sink).handle(a, message))  # type: ignore[arg-type]
    [(topic, _, delivery)] = sink.published
    assert topic == topics.DELIVERY and isinstance(delivery, Delivery)
    assert delivery.status == "delivered" and len(oracle.sent) == 1



def test_the_oracles_threshold_of_its_signers_is_sent_sorted_by_address(tmp_path: Path) -> None:
    oracle = FakeOracle()
    a = attestation()
    low, _, high = oracle.attesters
    result = deliver(oracle, tmp_path, a, book_of([signed(high, a), signed(low, a)]))
    assert result.outcome is Outcome.DELIVERED
    _, signatures = oracle.simulated
    assert [Account._recover_hash(bytes.fromhex(a.chains[0].digest[2:]), signature=s).lower()
            for s in signatures] == [low.address.lower(), high.address.lower()]


def test_refusals_that_leave_the_threshold_out_of_reach_drop_it_with_their_differences(
        tmp_path: Path) -> None:
    oracle = FakeOracle()
    a = attestation()
    low, mid, high = oracle.attesters
    book = book_of([signed(low, a), refused(mid, a, "price of ETH: 3000 in the log, 3100 here"),
                    refused(high, a, "block 41090:7 is 0x01 in the log")])
    result = deliver(oracle, tmp_path, a, book)
    assert (result.outcome, result.cause) == (Outcome.DROPPED, Reason.REFUSED_BY_ATTESTERS)
    assert "2 of 3 attesters refused (threshold 2)" in result.reason
    assert "3100 here" in result.reason and "is 0x01 in the log" in result.reason
    assert not oracle.sent


def test_forged_verdicts_count_for_nothing(tmp_path: Path) -> None:
    oracle = FakeOracle()
    a = attestation()
    low, mid, high = oracle.attesters
    outsider = Account.create()
    other = a.model_copy(update={"chains": (a.chains[0].model_copy(
        update={"digest": "0x" + "11" * 32}),)})
    forged = [
        signed(outsider, a),  # not one of the oracle's signers
        # claims to be ``mid`` but is signed by the outsider
        signed(outsider, a).model_copy(update={"attester": mid.address.lower()}),
        signed(high, other),  # a signature over another digest
    ]
    forged_refusal = refused(outsider, a, "made up").model_copy(
        update={"attester": mid.address.lower()})
    book = SignatureBook()
    kept = [book.add(v) for v in [signed(low, a), *forged, forged_refusal]]
    assert kept == [True, True, False, True, False]
    result = deliver(oracle, tmp_path, a, book, wait_s=0.2)
    # ``high`` signed another digest for this sequence (it refused this one, in effect);
    # ``mid``'s forged verdicts were dropped, so it is silent and the threshold of 2 can
    # still be reached: the submitter waits, and sends nothing.
    assert (result.outcome, result.cause) == (Outcome.RETRY, Reason.AWAITING_SIGNATURES)
    assert "1 of 2 signatures" in result.reason and mid.address.lower() in result.reason
    assert not oracle.sent
    book.add(signed(mid, a))  # the real one, after the forgeries
    assert deliver(oracle, tmp_path / "again", a, book).outcome is Outcome.DELIVERED


def test_an_attesters_first_verdict_is_shown_and_its_signature_counts() -> None:
    a = attestation()
    acct = Account.create()
    book = book_of([refused(acct, a, "first"), signed(acct, a)])
    [(_, held)] = book.of(a.trader, a.sequence).items()
    assert held.refused == ("first",)  # what the status shows: its first answer
    # but a signature, once given, counts: it cannot be taken back
    counted = book.count(a.trader, a.sequence, CHAIN, a.chains[0].digest,
                         [acct.address], 1)
    assert counted.complete


def test_pending_signatures_are_on_the_node_status_until_the_delivery_ends(
        tmp_path: Path) -> None:
    from relayer.delivery.retries import AwaitingStore

    oracle = FakeOracle()
    a = attestation()
    low, mid, high = oracle.attesters
    book = book_of([signed(low, a), refused(mid, a, "recomputed differs in equity_wad")])
    result = deliver(oracle, tmp_path, a, book, wait_s=0.1)
    assert result.cause is Reason.AWAITING_SIGNATURES
    [(key, waiting)] = AwaitingStore(StateDir(tmp_path).signatures(CHAIN)).entries.items()
    assert key == f"{a.trader}:{a.sequence}"
    assert waiting.signed == [low.address.lower()] and waiting.silent == [high.address.lower()]
    assert waiting.refused == {mid.address.lower(): ["recomputed differs in equity_wad"]}
