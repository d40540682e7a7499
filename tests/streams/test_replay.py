"""The auditor on a log built here: real proofs, attestations from the same reducers."""

from __future__ import annotations

import rlp
from trie import HexaryTrie

from engine import MarginParams
from proofs.keccak import keccak
from proofs.slots import vyper_mapping_slot
from streams.oracle import OraclePrice
from streams.replay import Auditor, LogRecord
from streams.risk import margin_in_one_call, next_attestation
from streams.settings import AttestationTarget, StreamSettings
from streams.state import TraderState, apply_attestation, apply_proven
from wire import topics
from wire.commitment import book_commitment
from wire.records import Attestation, Position, ProvenBook

TRADER = "0x" + "ab" * 20
VENUE = "0x" + "5e" * 20
WAD = 10**18
T0 = 1_700_000_000
SETTINGS = StreamSettings(targets=(AttestationTarget(chain_id=7, oracle="0x" + "aa" * 20),))
PARAMS = MarginParams()


def proven(block: int, size: float) -> ProvenBook:
    """A book of one ETH perp, with its account and storage proofs at ``block``."""
    positions = (Position(market="ETH", size_wad=int(size * WAD), entry_price_wad=3000 * WAD),)
    commitment = book_commitment(TRADER, 10_000 * WAD, positions)
    slot = vyper_mapping_slot(3, bytes.fromhex(TRADER[2:]))
    storage = HexaryTrie({})
    storage[keccak(slot.to_bytes(32, "big"))] = rlp.encode(int(commitment, 16))
    state = HexaryTrie({})
    address_key = keccak(bytes.fromhex(VENUE[2:]))
    state[address_key] = rlp.encode([0, 0, storage.root_hash, keccak(b"")])
    block_hash = "0x" + keccak(f"block {block}".encode()).hex()
    return ProvenBook(
        event_id=f"1:{block_hash}:0", chain_id=1, venue=VENUE, trader=TRADER,
        block_number=block, block_hash=block_hash, block_timestamp=T0 + 12 * block,
        collateral_wad=10_000 * WAD, positions=positions,
        state_root="0x" + state.root_hash.hex(), commitment=commitment,
        account_proof=tuple("0x" + rlp.encode(n).hex() for n in state.get_proof(address_key)),
        storage_slot=f"0x{slot:064x}",
        storage_proof=tuple("0x" + rlp.encode(n).hex()
                            for n in storage.get_proof(keccak(slot.to_bytes(32, "big")))))


def attest(state: TraderState, usd: int) -> Attestation:
    prices = {"ETH": OraclePrice("ETH", usd * WAD, T0, False)}
    result = margin_in_one_call([state], prices, PARAMS)
    assert result is not None
    attestation = next_attestation(state, result, 0, SETTINGS, prices)
    assert attestation is not None
    return attestation


def log_of(*records: ProvenBook | Attestation) -> list[LogRecord]:
    return [LogRecord(topics.POSITION_PROVEN if isinstance(r, ProvenBook) else
                      topics.ATTESTATION, 0, i, T0 * 1000 + i, TRADER.encode(), r.to_bytes())
            for i, r in enumerate(records)]


def history() -> tuple[list[ProvenBook], list[Attestation]]:
    """Books 1–3 and attestations 1, 2, 2 again (the worker killed before its state
    reached the changelog re-margined book 2 at a newer price), 3."""
    b1, b2, b3 = proven(1, 1.0), proven(2, 3.0), proven(3, -2.0)
    first = apply_proven(TraderState(trader=TRADER), b1)
    a1 = attest(first, 3000)
    before_second = apply_proven(apply_attestation(first, a1), b2)
    a2, a2_again = attest(before_second, 3000), attest(before_second, 3100)
    assert a2.sequence == a2_again.sequence == 2 and a2 != a2_again
    a3 = attest(apply_proven(apply_attestation(before_second, a2_again), b3), 3100)
    return [b1, b2, b3], [a1, a2, a2_again, a3]


def test_an_attestation_emitted_again_after_a_restart_is_recomputed_not_refused() -> None:
    (b1, b2, b3), (a1, a2, a2_again, a3) = history()
    report = Auditor(SETTINGS, PARAMS).feed_all(log_of(b1, a1, b2, a2, a2_again, b3, a3))
    audit = report.traders[TRADER]
    assert report.ok, audit.differences
    assert (report.books, audit.attestations, audit.matched, audit.repeated) == (3, 4, 4, 1)


def test_a_gap_or_a_doctored_repeat_is_still_named() -> None:
    (b1, b2, b3), (a1, a2, a2_again, a3) = history()
    gap = Auditor(SETTINGS, PARAMS).feed_all(log_of(b1, a1, b2, b3, a3))
    assert "sequence 3 follows 1" in gap.traders[TRADER].differences
    doctored = a2_again.model_copy(update={"equity_wad": a2_again.equity_wad + 1})
    report = Auditor(SETTINGS, PARAMS).feed_all(log_of(b1, a1, b2, a2, doctored))
    assert report.traders[TRADER].differences == [
        "sequence 2: recomputed differs in ['equity_wad']"]
