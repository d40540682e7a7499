"""The auditor on a log built here: real proofs, attestations from the same reducers."""

from __future__ import annotations

import rlp
from trie import HexaryTrie

from engine import MarginParams
from proofs.keccak import keccak
from proofs.slots import vyper_mapping_slot
from streams.audit_report import AuditReport, LogRecord
from streams.oracle import OraclePrice
from streams.replay import Auditor
from streams.risk import margin_in_one_call, next_attestation
from streams.settings import AttestationTarget, StreamSettings
from streams.state import TraderState, apply_attestation, apply_proven
from tests.support.blocks import header_record
from wire import topics
from wire.commitment import book_commitment
from wire.records import (
    Attestation,
    BlockHeaderRecord,
    ChainReorg,
    Position,
    PriceUpdate,
    ProvenBook,
    SourceBlock,
)

TRADER = "0x" + "ab" * 20
VENUE = "0x" + "5e" * 20
WAD = 10**18
T0 = 1_700_000_000
SETTINGS = StreamSettings(targets=(AttestationTarget(chain_id=7, oracle="0x" + "aa" * 20),))
PARAMS = MarginParams()


CHAIN = 1
FEED = "1:0x" + "fe" * 20
FINALITY = {CHAIN: 2}


def storage_of(trader: str, commitment: str) -> tuple[HexaryTrie, HexaryTrie, bytes, int]:
    """The venue's storage trie holding ``commitment``, a one-account state trie, the
    account's key and the commitment's slot."""
    slot = vyper_mapping_slot(3, bytes.fromhex(trader[2:]))
    storage = HexaryTrie({})
    storage[keccak(slot.to_bytes(32, "big"))] = rlp.encode(int(commitment, 16))
    state = HexaryTrie({})
    address_key = keccak(bytes.fromhex(VENUE[2:]))
    state[address_key] = rlp.encode([0, 0, storage.root_hash, keccak(b"")])
    return storage, state, address_key, slot


class Chain:
    """Headers of chain 1 as a log holds them, linked by parent hash."""

    def __init__(self) -> None:
        self.headers: list[BlockHeaderRecord] = []

    def block(self, state_root: bytes) -> BlockHeaderRecord:
        parent = bytes.fromhex(self.headers[-1].hash[2:]) if self.headers else b"\0" * 32
        number = len(self.headers) + 1
        header = header_record(CHAIN, number, parent, state_root, T0 + 12 * number)
        self.headers.append(header)
        return header

    def extend(self, blocks: int) -> None:
        for _ in range(blocks):
            self.block(b"\x01" * 32)


def proven(chain: Chain, size: float, trader: str = TRADER,
           positions: tuple[Position, ...] | None = None) -> ProvenBook:
    """A book of one ETH perp (or ``positions``) in a new block of ``chain``, with its
    account and storage proofs under that block's state root."""
    positions = positions or (
        Position(market="ETH", size_wad=int(size * WAD), entry_price_wad=3000 * WAD),)
    commitment = book_commitment(trader, 10_000 * WAD, positions)
    storage, state, address_key, slot = storage_of(trader, commitment)
    header = chain.block(state.root_hash)
    return ProvenBook(
        event_id=f"1:{header.hash}:0", chain_id=CHAIN, venue=VENUE, trader=trader,
        block_number=header.number, block_hash=header.hash, block_timestamp=header.timestamp,
        collateral_wad=10_000 * WAD, positions=positions,
        state_root="0x" + state.root_hash.hex(), commitment=commitment,
        account_proof=tuple("0x" + rlp.encode(n).hex() for n in state.get_proof(address_key)),
        storage_slot=f"0x{slot:064x}",
        storage_proof=tuple("0x" + rlp.encode(n).hex()
                            for n in storage.get_proof(keccak(slot.to_bytes(32, "big")))))


def round_of(usd: int, round_id: int, chain: Chain) -> PriceUpdate:
    """An oracle round of ETH, from the first block of ``chain``."""
    first = chain.headers[0]
    return PriceUpdate(asset="ETH", price_wad=usd * WAD, source=FEED, round_id=round_id,
                       observed_at=T0, chain_id=CHAIN, block_number=first.number,
                       block_hash=first.hash)


ROUNDS = {3000: 1, 3100: 2}  # the round each price of these tests comes from


def attest(state: TraderState, usd: int) -> Attestation:
    prices = {"ETH": OraclePrice("ETH", usd * WAD, T0, False,
                                 rounds=((FEED, ROUNDS[usd]),))}
    result = margin_in_one_call([state], prices, PARAMS)
    assert result is not None
    attestation = next_attestation(state, result, 0, SETTINGS, prices)
    assert attestation is not None
    return attestation


Logged = BlockHeaderRecord | PriceUpdate | ChainReorg | ProvenBook | Attestation
TOPIC = {BlockHeaderRecord: topics.BLOCK_HEADER, PriceUpdate: topics.PRICE,
         ChainReorg: topics.REORG, ProvenBook: topics.POSITION_PROVEN,
         Attestation: topics.ATTESTATION}


def log_of(chain: Chain, *records: Logged, rounds: bool = True) -> list[LogRecord]:
    """The chain's headers and the price rounds first, then ``records``; offsets count
    per topic, as one partition of each would."""
    first = [*chain.headers, *([round_of(usd, r, chain) for usd, r in ROUNDS.items()]
                               if rounds else [])]
    offsets: dict[str, int] = {}
    out = []
    for i, r in enumerate([*first, *records]):
        topic = TOPIC[type(r)]
        offsets[topic] = offsets.get(topic, -1) + 1
        key = getattr(r, "trader", "").encode() or b"k"
        out.append(LogRecord(topic, 0, offsets[topic], T0 * 1000 + i, key, r.to_bytes()))
    return out


def audited(chain: Chain, *records: Logged, rounds: bool = True) -> AuditReport:
    return Auditor(SETTINGS, PARAMS, finality=FINALITY).feed_all(
        log_of(chain, *records, rounds=rounds))


def history() -> tuple[Chain, list[ProvenBook], list[Attestation]]:
    """Books 1–3 and attestations 1, 2, 2 again (the worker killed before its state
    reached the changelog re-margined book 2 at a newer price), 3; the chain runs two
    blocks past the last book, so that every book is final."""
    chain = Chain()
    b1, b2, b3 = proven(chain, 1.0), proven(chain, 3.0), proven(chain, -2.0)
    chain.extend(2)
    first = apply_proven(TraderState(trader=TRADER), b1, 0)
    a1 = attest(first, 3000)
    before_second = apply_proven(apply_attestation(first, a1), b2, 1)
    a2, a2_again = attest(before_second, 3000), attest(before_second, 3100)
    assert a2.sequence == a2_again.sequence == 2 and a2 != a2_again
    a3 = attest(apply_proven(apply_attestation(before_second, a2_again), b3, 2), 3100)
    return chain, [b1, b2, b3], [a1, a2, a2_again, a3]


def test_an_attestation_emitted_again_after_a_restart_is_recomputed_not_refused() -> None:
    chain, (b1, b2, b3), (a1, a2, a2_again, a3) = history()
    report = audited(chain, b1, a1, b2, a2, a2_again, b3, a3)
    audit = report.traders[TRADER]
    assert report.ok, audit.differences
    assert (report.books, audit.attestations, audit.matched, audit.repeated) == (3, 4, 4, 1)


def test_a_gap_or_a_doctored_repeat_is_still_named() -> None:
    chain, (b1, b2, b3), (a1, a2, a2_again, a3) = history()
    gap = audited(chain, b1, a1, b2, b3, a3)
    assert "sequence 3 follows 1" in gap.traders[TRADER].differences
    doctored = a2_again.model_copy(update={"equity_wad": a2_again.equity_wad + 1})
    report = audited(chain, b1, a1, b2, a2, doctored)
    assert report.traders[TRADER].differences == [
        "sequence 2: recomputed differs in ['equity_wad']"]


def only_differences(report: AuditReport, trader: str = TRADER) -> list[str]:
    return report.traders[trader].differences


def test_the_honest_log_audits_ok_on_its_own_headers_and_rounds() -> None:
    chain, (b1, b2, b3), (a1, a2, a2_again, a3) = history()
    report = audited(chain, b1, a1, b2, a2, a2_again, b3, a3)
    assert report.ok, (report.problems, only_differences(report))
    assert report.headers == len(chain.headers) == 5


def test_a_self_consistent_trie_under_a_forged_state_root_is_named() -> None:
    # The forger proves a 50 ETH book against a state root of their own making: the
    # proofs verify, but no header of the log has that root.
    chain, (b1, _, _), (a1, *_) = history()
    forged = proven(Chain(), 50.0)
    forged = forged.model_copy(update={"block_hash": b1.block_hash, "block_number": 1,
                                       "event_id": b1.event_id,
                                       "block_timestamp": b1.block_timestamp})
    report = audited(chain, forged, a1)
    assert (f"book {b1.event_id}: state root {forged.state_root}, its header's is "
            f"{chain.headers[0].state_root}") in only_differences(report)
    assert not report.ok


def test_a_book_whose_block_has_no_header_in_the_log_is_named() -> None:
    chain, (b1, _, _), (a1, *_) = history()
    headless = Chain()
    headless.headers = chain.headers[1:]  # block 1's header left out
    report = audited(headless, b1, a1, rounds=False)
    assert (f"book {b1.event_id}: block 1:1 {b1.block_hash} has no header in the log"
            in only_differences(report))
    assert not report.ok


def test_a_book_not_yet_final_in_the_log_is_named() -> None:
    chain, (b1, _, _), (a1, *_) = history()
    short = Chain()
    short.headers = chain.headers[:2]  # block 1 and one block after it: depth 1 of 2
    report = audited(short, b1, a1)
    assert (f"book {b1.event_id}: block 1:1 is not final in the log (no header 2 block(s) "
            "below it)") in only_differences(report)


def test_an_attestation_at_a_made_up_price_is_named() -> None:
    chain, (b1, _, _), _ = history()
    first = apply_proven(TraderState(trader=TRADER), b1, 0)
    prices = {"ETH": OraclePrice("ETH", 9_000 * WAD, T0, False, rounds=((FEED, 1),))}
    result = margin_in_one_call([first], prices, PARAMS)
    assert result is not None
    at_9000 = next_attestation(first, result, 0, SETTINGS, prices)
    assert at_9000 is not None
    report = audited(chain, b1, at_9000)
    assert (f"sequence 1: price of ETH: price_wad {9_000 * WAD}, its rounds give "
            f"{3_000 * WAD}") in only_differences(report)
    unnamed = at_9000.model_copy(update={"prices": tuple(
        p.model_copy(update={"rounds": ()}) for p in at_9000.prices)})
    assert ("sequence 1: price of ETH: names no oracle round"
            in only_differences(audited(chain, b1, unnamed)))
    assert not report.ok


def test_an_attestation_omitting_a_newer_book_it_had_read_is_named() -> None:
    chain, (b1, b2, _), (a1, *_) = history()
    # A 50 ETH book at offset 1 that the attestation claims to have read (book_offset 1)
    # while naming only the first book.
    hidden = a1.model_copy(update={"book_offset": 1, "sequence": 1})
    report = audited(chain, b1, b2, hidden)
    key = f"1:{VENUE}"
    assert (f"sequence 1: book of {key} is {b1.event_id}, the newest read by offset 1 is "
            f"{b2.event_id}") in only_differences(report)


def test_an_attestation_naming_another_traders_book_is_named() -> None:
    chain, (b1, _, _), (a1, *_) = history()
    other = "0x" + "cd" * 20
    theirs = proven(chain, 5.0, trader=other)
    chain.extend(2)
    borrowed = a1.model_copy(update={"book_events": (theirs.event_id,)})
    report = audited(chain, b1, theirs, borrowed)
    assert (f"sequence 1: names book {theirs.event_id} of {other}"
            in only_differences(report))


def test_an_attestation_naming_an_orphaned_book_is_named() -> None:
    chain, (b1, _, _), (a1, *_) = history()
    reorg = ChainReorg(
        chain_id=CHAIN, common_ancestor=SourceBlock(chain_id=CHAIN, number=0,
                                                    hash="0x" + "00" * 32),
        orphaned=(b1.block_hash,),
        new_head=SourceBlock(chain_id=CHAIN, number=1, hash="0x" + "99" * 32))
    report = audited(chain, b1, a1, reorg)
    assert (f"book {b1.event_id}: named by sequence 1 but its block is orphaned by a "
            "chain.reorg.v1") in only_differences(report)


def test_a_book_whose_storage_proof_does_not_verify_is_named() -> None:
    chain, (b1, _, _), (a1, *_) = history()
    node = bytearray.fromhex(b1.storage_proof[-1][2:])
    node[-1] ^= 1  # one bit of the leaf: the commitment and the book still agree
    broken = b1.model_copy(update={"storage_proof": (*b1.storage_proof[:-1],
                                                     "0x" + node.hex())})
    report = audited(chain, broken, a1)
    assert any(d.startswith(f"book {b1.event_id}: ") and "Mismatch" in d
               for d in only_differences(report)), only_differences(report)
    assert not report.ok
