"""The watchtower's rules on accepted attestations, and the calldata it reads them from."""

from __future__ import annotations

import time
from pathlib import Path

from eth_account import Account
from web3 import Web3

from attester.watchtower import Accepted, OwnSignatures, Watch, submitted_signatures
from relayer.contracts import compiled
from tests.support.verdicts import signed
from wire.records import Attestation, ChainCredit

SIGNERS = sorted((Account.create() for _ in range(3)), key=lambda a: int(a.address, 16))
ME, OTHER, THIRD = SIGNERS
CHAIN = 41001
DIGEST = "0x" + "ab" * 32


def attestation(digest: str = DIGEST) -> Attestation:
    credit = ChainCredit(chain_id=CHAIN, oracle="0x" + "11" * 20, free_collateral_wad=1,
                         digest=digest)
    return Attestation(
        trader="0x" + "22" * 20, sequence=7, equity_wad=1, maintenance_margin_wad=1,
        initial_margin_wad=1, health=1.0, isolated_margin_wad=1, params_version=1,
        source_blocks=(), source_blocks_hash="0x" + "42" * 32, issued_at=int(time.time()),
        valid_until=int(time.time()) + 60, chains=(credit,))


def accepted(signed_by: tuple[str, ...] = ()) -> Accepted:
    return Accepted(CHAIN, 100, "0x" + "cd" * 32, "0x" + "22" * 20, 7, DIGEST, signed_by)


def members() -> set[str]:
    return {s.address.lower() for s in SIGNERS}


def test_what_it_reproduced_stands() -> None:
    watch = Watch(ME.address.lower())
    watch.signed(signed(ME, attestation()))
    assert watch.judge(accepted((ME.address.lower(),)), members(), 2).scope is None


def test_what_a_threshold_signed_on_the_log_stands_even_if_this_attester_refused() -> None:
    watch = Watch(ME.address.lower())
    for s in (OTHER, THIRD):
        watch.saw(signed(s, attestation()))
    decision = watch.judge(accepted(), members(), 2)
    assert (decision.scope, decision.outcome) == (None, "vouched")


def test_forged_or_outside_verdicts_vouch_for_nothing() -> None:
    watch = Watch(ME.address.lower())
    watch.saw(signed(OTHER, attestation()))
    stranger = Account.create()
    watch.saw(signed(stranger, attestation()))  # authentic, but not an oracle signer
    forged = signed(OTHER, attestation()).model_copy(update={"attester": THIRD.address.lower()})
    watch.saw(forged)  # THIRD's name over OTHER's signature
    decision = watch.judge(accepted(), members(), 2)
    assert decision.scope == "trader", decision
    assert "1 of the threshold 2" in decision.why


def test_another_digest_for_the_same_sequence_is_not_what_it_signed() -> None:
    watch = Watch(ME.address.lower())
    watch.signed(signed(ME, attestation("0x" + "01" * 32)))
    assert watch.judge(accepted(), members(), 2).scope == "trader"


def test_its_own_key_on_a_digest_it_never_signed_pauses_the_oracle() -> None:
    watch = Watch(ME.address.lower())
    decision = watch.judge(accepted((ME.address.lower(), OTHER.address.lower())), members(), 2)
    assert (decision.scope, decision.outcome) == ("oracle", "paused_oracle")


def test_its_own_signatures_survive_a_restart(tmp_path: Path) -> None:
    own = OwnSignatures(tmp_path / "signed.jsonl")
    assert own.load() == set()
    own.add(signed(ME, attestation()))
    assert own.load() == {(CHAIN, DIGEST)}


def test_the_signatures_are_read_from_a_submit_call() -> None:
    oracle = Web3().eth.contract(abi=compiled("MarginOracle").abi)
    signatures = [b"\x01" * 65, b"\x02" * 65]
    calldata = oracle.encode_abi("submit", args=[
        ("0x" + "11" * 20, 1, -2, 3, 4, 5, 6, b"\x42" * 32, 7, 8), signatures])
    assert submitted_signatures(bytes.fromhex(calldata[2:])) == signatures
    other = oracle.encode_abi("pause", args=["0x" + "11" * 20, b"\x01" * 65])
    assert submitted_signatures(bytes.fromhex(other[2:])) == []
