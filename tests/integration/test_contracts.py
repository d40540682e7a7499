"""Contracts on a real anvil chain: MarginOracle's checks, the venue's commitment slot,
and the proof service against real eth_getProof answers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from web3 import HTTPProvider, Web3
from web3.exceptions import ContractLogicError

from devnet.deploy import (
    Deployment,
    anvil_account,
    contract,
    deploy_chain,
    deploy_contract,
    fund,
    transact,
)
from devnet.localnet import LocalNet
from proofs import ProofError, vyper_mapping_slot
from relayer.chain.events import (
    OPTION_POSITION_CHANGED_TOPIC,
    POSITION_CHANGED_TOPIC,
    commitment_base_slot,
    decode_option_position_changed,
    decode_position_changed,
)
from relayer.chain.rpc import RpcPool
from relayer.delivery.signing import rotation_digest, sign_digest, threshold_signatures
from relayer.proving.fetcher import ProofFetcher
from relayer.proving.service import prove_event
from relayer.settings import ChainSettings, KeystoreSettings
from tests.support.credit import attest, new_account
from wire.commitment import book_commitment, market_bytes
from wire.eip712 import attestation_digest, pause_digest
from wire.records import PositionEvent

pytestmark = pytest.mark.integration
WAD = 10**18
USDC = 10**6
SIGNERS = [Account.create() for _ in range(3)]
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@pytest.fixture(scope="module")
def chain(localnet: LocalNet) -> Iterator[tuple[Web3, Deployment]]:
    url = localnet.chain(41010, block_time_s=None)
    deployment = deploy_chain(url, anvil_account(0), [s.address for s in SIGNERS], 2,
                              {"ETH": 3000})
    yield Web3(HTTPProvider(url)), deployment


def fields(trader: str, sequence: int, valid_until: int) -> dict[str, Any]:
    return dict(trader=trader, sequence=sequence, equity_wad=20_000 * WAD,
                maintenance_margin_wad=300 * WAD, initial_margin_wad=375 * WAD,
                free_collateral_wad=9_000 * WAD, params_version=1,
                source_blocks_hash=b"\x42" * 32, source_block=0, valid_until=valid_until)


def as_struct(f: dict[str, Any]) -> tuple[Any, ...]:
    return (Web3.to_checksum_address(f["trader"]), f["sequence"], f["equity_wad"],
            f["maintenance_margin_wad"], f["initial_margin_wad"], f["free_collateral_wad"],
            f["params_version"], f["source_blocks_hash"], f["source_block"], f["valid_until"])


def digest_for(d: Deployment, f: dict[str, Any], chain_id: int | None = None) -> bytes:
    return attestation_digest(chain_id=chain_id or d.chain_id,
                              oracle=bytes.fromhex(d.oracle[2:]),
                              trader=bytes.fromhex(f["trader"][2:]), **{
                                  k: v for k, v in f.items() if k != "trader"})


def sigs(digest: bytes, signers: list[Any], threshold: int = 2) -> list[bytes]:
    return threshold_signatures([sign_digest(s, digest) for s in signers], threshold)


def submit(w3: Web3, d: Deployment, f: dict[str, Any], signatures: list[bytes]) -> None:
    oracle = contract(w3, "MarginOracle", d.oracle)
    transact(w3, anvil_account(1), oracle.functions.submit(as_struct(f), signatures))


def test_oracle_digest_equals_the_stream_processors(chain: tuple[Web3, Deployment]) -> None:
    w3, d = chain
    f = fields("0x" + "12" * 20, 5, 2**40)
    on_chain = contract(w3, "MarginOracle", d.oracle).functions.digest(as_struct(f)).call()
    assert on_chain == digest_for(d, f)


def test_threshold_signed_attestation_is_accepted_and_readable(
        chain: tuple[Web3, Deployment]) -> None:
    w3, d = chain
    trader = Account.create().address.lower()
    f = fields(trader, 1, int(time.time()) + 3600)
    submit(w3, d, f, sigs(digest_for(d, f), SIGNERS))
    oracle = contract(w3, "MarginOracle", d.oracle)
    assert oracle.functions.latest(Web3.to_checksum_address(trader)).call()[1] == 1
    assert oracle.functions.free_collateral(Web3.to_checksum_address(trader)).call() == 9_000 * WAD
    assert oracle.functions.is_liquidatable(Web3.to_checksum_address(trader)).call() is False


@pytest.mark.parametrize("case, reason", [
    ("below_threshold", "below threshold"),
    ("duplicate", "signers unsorted or duplicate"),
    ("unsorted", "signers unsorted or duplicate"),
    ("wrong_domain", "unknown signer"),
    ("stale", "stale sequence"),
    ("expired", "expired"),
    ("no_signatures", "below threshold"),
    ("high_s", "malleable signature"),
    ("recovers_zero", "bad signature"),
    ("bad_v", "bad signature v"),
    ("short", "bad signature length"),
    ("zero_root", "no source blocks"),   # no default counts (Nomad)
    ("zero_trader", "zero trader"),
])
def test_oracle_reverts(chain: tuple[Web3, Deployment], case: str, reason: str) -> None:
    w3, d = chain
    trader = Account.create().address.lower()
    now = int(time.time())
    ok = fields(trader, 3, now + 3600)
    submit(w3, d, ok, sigs(digest_for(d, ok), SIGNERS))
    f = fields(trader, 2 if case == "stale" else 4, now - 10 if case == "expired" else now + 3600)
    if case == "zero_root":
        f["source_blocks_hash"] = bytes(32)
    elif case == "zero_trader":
        f["trader"] = "0x" + "00" * 20
    digest = digest_for(d, f, chain_id=d.chain_id + 1 if case == "wrong_domain" else None)
    signatures = sigs(digest, SIGNERS)
    if case == "below_threshold":
        signatures = signatures[:1]
    elif case == "duplicate":
        signatures = [signatures[0], signatures[0]]
    elif case == "unsorted":
        signatures = list(reversed(signatures))
    elif case == "no_signatures":
        signatures = []
    elif case == "high_s":  # (r, n - s, v flipped) recovers the same signer
        signatures = [malleated(signatures[0]), signatures[1]]
    elif case == "recovers_zero":  # r = 0: ecrecover answers the zero address
        signatures = [bytes(32) + signatures[0][32:], signatures[1]]
    elif case == "bad_v":
        signatures = [signatures[0][:64] + bytes([29]), signatures[1]]
    elif case == "short":
        signatures = [signatures[0][:64], signatures[1]]
    oracle = contract(w3, "MarginOracle", d.oracle)
    with pytest.raises(ContractLogicError, match=reason):
        oracle.functions.submit(as_struct(f), signatures).call()


def malleated(signature: bytes) -> bytes:
    """The other signature of the same signer over the same digest: s mirrored, v flipped."""
    s = int.from_bytes(signature[32:64], "big")
    v = signature[64]
    return signature[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])


def test_the_malleated_signature_recovers_the_same_signer() -> None:
    # The high-s case above reverts on the check, not on a signature that recovers nobody.
    digest = b"\x07" * 32
    good = sign_digest(SIGNERS[0], digest).signature
    bad = malleated(good)
    assert int.from_bytes(bad[32:64], "big") > SECP256K1_N // 2
    vrs = (bad[64], int.from_bytes(bad[:32], "big"), int.from_bytes(bad[32:64], "big"))
    assert Account._recover_hash(digest, vrs=vrs) == SIGNERS[0].address


@pytest.mark.parametrize("signers, threshold", [(3, 0), (3, 4), (0, 1)])
def test_no_oracle_is_deployed_or_rotated_to_a_threshold_outside_one_to_n(
        chain: tuple[Web3, Deployment], signers: int, threshold: int) -> None:
    w3, d = chain
    members = [Web3.to_checksum_address(a.address) for a in
               sorted(SIGNERS, key=lambda a: int(a.address, 16))][:signers]
    with pytest.raises(ContractLogicError, match="bad threshold"):
        deploy_contract(w3, anvil_account(0), "MarginOracle", members, threshold)
    address = deploy_contract(w3, anvil_account(0), "MarginOracle",
                              [Web3.to_checksum_address(a.address) for a in SIGNERS], 2)
    oracle = contract(w3, "MarginOracle", address)
    digest = rotation_digest(d.chain_id, bytes.fromhex(address[2:]), members, threshold, 0)
    with pytest.raises(ContractLogicError, match="bad threshold"):
        oracle.functions.rotate(members, threshold, sigs(digest, SIGNERS)).call()


def test_an_attestations_signatures_never_authorise_a_rotation(
        chain: tuple[Web3, Deployment]) -> None:
    # Separate EIP-712 types: the same signers' attestation signatures, offered for a
    # rotation, recover other addresses.
    w3, d = chain
    oracle = contract(w3, "MarginOracle", d.oracle)
    f = fields(Account.create().address.lower(), 1, int(time.time()) + 3600)
    signed = sigs(digest_for(d, f), SIGNERS)
    members = [Web3.to_checksum_address(Account.create().address) for _ in range(2)]
    with pytest.raises(ContractLogicError, match=r"unknown signer|unsorted"):
        oracle.functions.rotate(members, 1, signed).call()
    assert oracle.functions.rotation_nonce().call() == 0


def _trade(w3: Web3, d: Deployment, trader: Any, size: float) -> PositionEvent:
    venue = contract(w3, "PerpVenue", d.venue)
    fund(w3, d, anvil_account(0), trader, 5_000 * USDC)
    transact(w3, trader, venue.functions.deposit(5_000 * USDC))
    attest(w3, d, SIGNERS, 2, trader.address, free_usd=50_000)
    receipt = transact(w3, trader, venue.functions.trade(market_bytes("ETH"), int(size * WAD)))
    log = next(entry for entry in receipt["logs"]
               if "0x" + entry["topics"][0].hex().removeprefix("0x") == POSITION_CHANGED_TOPIC)
    raw = {"topics": ["0x" + t.hex().removeprefix("0x") for t in log["topics"]],
           "data": "0x" + log["data"].hex().removeprefix("0x")}
    who, collateral, positions, commitment = decode_position_changed(raw)
    block = w3.eth.get_block(receipt["blockNumber"])
    return PositionEvent(
        event_id=f"{d.chain_id}:0x{block['hash'].hex()}:{log['logIndex']}", chain_id=d.chain_id,
        venue=d.venue, trader=who, block_number=block["number"],
        block_hash="0x" + block["hash"].hex().removeprefix("0x"),
        block_timestamp=block["timestamp"], log_index=log["logIndex"],
        collateral_wad=collateral, positions=positions, commitment=commitment,
    )


def _client(d: Deployment) -> RpcPool:
    dummy = KeystoreSettings(keystore="unused.json", password_file="unused")  # type: ignore[arg-type]
    return RpcPool(ChainSettings(name="t", chain_id=d.chain_id, rpc_urls=[d.rpc_url],
                                     oracle=d.oracle, submitter=dummy))


def test_commitment_slot_and_event_agree_with_storage(chain: tuple[Web3, Deployment]) -> None:
    w3, d = chain
    trader = anvil_account(3)
    event = _trade(w3, d, trader, 2.5)
    slot = vyper_mapping_slot(commitment_base_slot(), bytes.fromhex(trader.address[2:]))
    stored = w3.eth.get_storage_at(Web3.to_checksum_address(d.venue), slot)
    assert "0x" + stored.hex().removeprefix("0x") == event.commitment
    assert book_commitment(event.trader, event.collateral_wad, event.positions) == event.commitment


def test_proof_service_proves_a_real_book_and_rejects_a_forged_one(
        chain: tuple[Web3, Deployment]) -> None:
    w3, d = chain
    event = _trade(w3, d, anvil_account(4), -1.0)
    book = asyncio.run(prove_event(ProofFetcher(_client(d)), event))
    assert book.positions == event.positions and book.account_proof
    forged = event.model_copy(update={"collateral_wad": event.collateral_wad * 2})
    with pytest.raises(ProofError, match="event commitment"):
        asyncio.run(prove_event(ProofFetcher(_client(d)), forged))
    lying = event.model_copy(update={
        "collateral_wad": event.collateral_wad * 2,
        "commitment": book_commitment(event.trader, event.collateral_wad * 2, event.positions),
    })
    with pytest.raises(ProofError, match="commitment of"):
        asyncio.run(prove_event(ProofFetcher(_client(d)), lying))


def test_signer_rotation_is_signed_by_the_current_set_and_cannot_be_replayed(
        chain: tuple[Web3, Deployment]) -> None:
    w3, d = chain
    old = sorted(SIGNERS, key=lambda a: int(a.address, 16))
    new = sorted([Account.create() for _ in range(3)], key=lambda a: int(a.address, 16))
    address = deploy_contract(w3, anvil_account(0), "MarginOracle",
                              [Web3.to_checksum_address(a.address) for a in old], 2)
    oracle = contract(w3, "MarginOracle", address)
    mine = Deployment(d.chain_id, d.rpc_url, address, d.venue, d.feeds)

    def rotation(to: list[Any], nonce: int) -> tuple[list[str], bytes]:
        members = [Web3.to_checksum_address(a.address) for a in to]
        digest = rotation_digest(d.chain_id, bytes.fromhex(address[2:]), members, 2, nonce)
        assert oracle.functions.rotation_nonce().call() == nonce
        assert digest == oracle.functions.rotation_digest(members, 2).call()  # same bytes
        return members, digest

    members, digest = rotation(new, 0)
    with pytest.raises(ContractLogicError, match="below threshold"):
        oracle.functions.rotate(members, 2, sigs(digest, old)[:1]).call()
    with pytest.raises(ContractLogicError, match="unknown signer"):  # not the current set
        oracle.functions.rotate(members, 2, sigs(digest, new)).call()
    first_rotation = sigs(digest, old)
    transact(w3, anvil_account(1), oracle.functions.rotate(members, 2, first_rotation))
    assert oracle.functions.rotation_nonce().call() == 1
    assert all(oracle.functions.is_signer(m).call() for m in members)
    assert not any(oracle.functions.is_signer(a.address).call() for a in old)

    trader = Account.create().address.lower()
    f = fields(trader, 1, int(time.time()) + 3600)
    with pytest.raises(ContractLogicError, match="unknown signer"):  # the old set is out
        oracle.functions.submit(as_struct(f), sigs(digest_for(mine, f), old)).call()
    submit(w3, mine, f, sigs(digest_for(mine, f), new))

    # Back to the old set (signed by the new one), then the first rotation again: the old
    # set is current once more, but the nonce has moved on, so its signatures are void.
    back, back_digest = rotation(old, 1)
    transact(w3, anvil_account(1), oracle.functions.rotate(back, 2, sigs(back_digest, new)))
    with pytest.raises(ContractLogicError, match="unknown signer"):
        oracle.functions.rotate(members, 2, first_rotation).call()


@pytest.fixture(scope="module")
def two_markets(chain: tuple[Web3, Deployment]) -> Deployment:
    _, d = chain
    return deploy_chain(d.rpc_url, anvil_account(0), [s.address for s in SIGNERS], 2,
                        {"ETH": 3000, "BTC": 60_000})


def test_venue_draws_new_risk_from_the_attested_free_collateral(
        chain: tuple[Web3, Deployment], two_markets: Deployment) -> None:
    w3, _ = chain
    d = two_markets
    venue = contract(w3, "PerpVenue", d.venue)
    ledger = contract(w3, "CreditLedger", d.ledger)
    trader = anvil_account(5)
    fund(w3, d, anvil_account(0), trader, 10_000 * USDC)
    transact(w3, trader, venue.functions.deposit(10_000 * USDC))
    eth = market_bytes("ETH")
    with pytest.raises(ContractLogicError, match="insufficient free collateral"):
        venue.functions.trade(eth, WAD).call({"from": trader.address})  # no attestation yet
    attest(w3, d, SIGNERS, 2, trader.address, free_usd=1_000)
    # 1 ETH at $3,000 needs 20% = $600 of the $1,000 line; a second one is $1,200 in all.
    transact(w3, trader, venue.functions.trade(eth, WAD))
    assert ledger.functions.unseen(trader.address).call() == 600 * WAD
    with pytest.raises(ContractLogicError, match="insufficient free collateral"):
        venue.functions.trade(eth, WAD).call({"from": trader.address})
    transact(w3, trader, venue.functions.trade(eth, -WAD // 2))  # reducing needs nothing
    # A newer attestation counts the open position: the window starts again.
    attest(w3, d, SIGNERS, 2, trader.address, free_usd=700)
    transact(w3, trader, venue.functions.trade(eth, WAD))  # +1 ETH: $600 of $700
    assert ledger.functions.unseen(trader.address).call() == 600 * WAD
    # Flipping sides is new risk on the whole new side.
    attest(w3, d, SIGNERS, 2, trader.address, free_usd=0)
    with pytest.raises(ContractLogicError, match="insufficient free collateral"):
        venue.functions.trade(eth, -3 * WAD).call({"from": trader.address})


def test_liquidation_only_for_a_flagged_trader_and_only_the_named_leg(
        chain: tuple[Web3, Deployment], two_markets: Deployment) -> None:
    w3, _ = chain
    d = two_markets
    venue = contract(w3, "PerpVenue", d.venue)
    trader, liquidator = anvil_account(6), anvil_account(7)
    fund(w3, d, anvil_account(0), trader, 10_000 * USDC)
    transact(w3, trader, venue.functions.deposit(10_000 * USDC))
    attest(w3, d, SIGNERS, 2, trader.address, free_usd=50_000)
    transact(w3, trader, venue.functions.trade(market_bytes("ETH"), 2 * WAD))
    transact(w3, trader, venue.functions.trade(market_bytes("BTC"), WAD // 10))
    with pytest.raises(ContractLogicError, match="trader is not flagged"):
        venue.functions.liquidate(trader.address, market_bytes("ETH"), 2 * WAD).call(
            {"from": liquidator.address})
    attest(w3, d, SIGNERS, 2, trader.address, free_usd=0, equity_usd=900, mm_usd=1_000)
    with pytest.raises(ContractLogicError, match="no such position"):
        venue.functions.liquidate(trader.address, market_bytes("SOL"), WAD).call(
            {"from": liquidator.address})
    transact(w3, liquidator, venue.functions.liquidate(trader.address, market_bytes("ETH"),
                                                       5 * WAD))  # more than held: all of it
    left = venue.functions.positions(trader.address).call()
    assert [(p[0], p[1]) for p in left] == [(market_bytes("BTC"), WAD // 10)]


def test_lending_pool_draws_borrows_and_withdrawals_from_the_attested_credit(
        chain: tuple[Web3, Deployment], two_markets: Deployment) -> None:
    w3, _ = chain
    d = two_markets
    pool = contract(w3, "LendingPool", d.pool)
    trader = anvil_account(8)
    eth = market_bytes("ETH")
    lender = new_account(w3)
    fund(w3, d, anvil_account(0), lender, 0, {"BTC": 10**8})  # WBTC has 8 decimals
    transact(w3, lender, pool.functions.supply(market_bytes("BTC"), 10**8))
    fund(w3, d, anvil_account(0), trader, 0, {"ETH": 2 * WAD})
    transact(w3, trader, pool.functions.supply(eth, 2 * WAD))  # adding assets always passes
    with pytest.raises(ContractLogicError, match="insufficient free collateral"):
        pool.functions.withdraw(eth, WAD).call({"from": trader.address})
    attest(w3, d, SIGNERS, 2, trader.address, free_usd=3_000)
    transact(w3, trader, pool.functions.withdraw(eth, WAD))  # $3,000 of value out
    with pytest.raises(ContractLogicError, match="withdraw the supply first"):
        pool.functions.borrow(eth, WAD).call({"from": trader.address})
    btc = market_bytes("BTC")
    attest(w3, d, SIGNERS, 2, trader.address, free_usd=7_000)
    with pytest.raises(ContractLogicError, match="insufficient free collateral"):
        pool.functions.borrow(btc, 10**7).call({"from": trader.address})  # $6,000 + 20%
    transact(w3, trader, pool.functions.borrow(btc, 5 * 10**6))  # $3,000 + 20% = $3,600
    fund(w3, d, anvil_account(0), trader, 0, {"BTC": 1})  # the interest's last unit
    transact(w3, trader, pool.functions.repay(btc, 10**8))  # repaying always passes
    book = {p[0]: p[1] for p in pool.functions.positions(trader.address).call()}
    assert book == {eth: WAD}


def test_option_venue_books_are_proven_and_writing_draws_on_the_credit(
        chain: tuple[Web3, Deployment], two_markets: Deployment) -> None:
    w3, _ = chain
    d = two_markets
    venue = contract(w3, "OptionVenue", d.options)
    eth = market_bytes("ETH")
    expiry = w3.eth.get_block("latest")["timestamp"] + 30 * 86_400
    call, put = (eth, 3300 * WAD, expiry, True), (eth, 2700 * WAD, expiry, False)
    transact(w3, anvil_account(0), venue.functions.quote(*call, 120 * WAD))
    transact(w3, anvil_account(0), venue.functions.quote(*put, 90 * WAD))
    trader = anvil_account(9)
    fund(w3, d, anvil_account(0), trader, 1_000 * USDC)
    transact(w3, trader, venue.functions.deposit(1_000 * USDC))
    transact(w3, trader, venue.functions.trade(*call, 2 * WAD))  # buying pays from cash
    assert venue.functions.cash(trader.address).call() == 760 * USDC
    with pytest.raises(ContractLogicError, match="premium exceeds cash"):
        venue.functions.trade(*call, 10 * WAD).call({"from": trader.address})
    with pytest.raises(ContractLogicError, match="insufficient free collateral"):
        venue.functions.trade(*put, -WAD).call({"from": trader.address})  # writing is risk
    attest(w3, d, SIGNERS, 2, trader.address, free_usd=1_000)
    receipt = transact(w3, trader, venue.functions.trade(*put, -WAD))  # $3,000 × 20% = $600
    assert contract(w3, "CreditLedger", d.ledger).functions.unseen(trader.address).call() \
        == 600 * WAD

    log = next(e for e in receipt["logs"]
               if "0x" + e["topics"][0].hex().removeprefix("0x") == OPTION_POSITION_CHANGED_TOPIC)
    raw = {"topics": ["0x" + t.hex().removeprefix("0x") for t in log["topics"]],
           "data": "0x" + log["data"].hex().removeprefix("0x")}
    who, collateral, positions, commitment = decode_option_position_changed(raw)
    assert {(p.kind, p.size_wad, p.strike_wad) for p in positions} == {
        ("call", 2 * WAD, 3300 * WAD), ("put", -WAD, 2700 * WAD)}
    assert book_commitment(who, collateral, positions) == commitment
    block = w3.eth.get_block(receipt["blockNumber"])
    event = PositionEvent(
        event_id=f"{d.chain_id}:0x{block['hash'].hex()}:{log['logIndex']}", chain_id=d.chain_id,
        venue=d.options, trader=who, block_number=block["number"],
        block_hash="0x" + block["hash"].hex().removeprefix("0x"),
        block_timestamp=block["timestamp"], log_index=log["logIndex"],
        collateral_wad=collateral, positions=positions, commitment=commitment)
    proven = asyncio.run(prove_event(ProofFetcher(_client(d)), event))
    assert proven.positions == positions


def pause_sig(d: Deployment, signer: Any, trader: str | None, nonce: int,
              lift: bool = False) -> bytes:
    who = None if trader is None else bytes.fromhex(trader.lower()[2:])
    digest = pause_digest(d.chain_id, bytes.fromhex(d.oracle[2:]), who, nonce, lift)
    return bytes(sign_digest(signer, digest).signature)


def test_pause_digests_equal_the_oracles(chain: tuple[Web3, Deployment]) -> None:
    w3, d = chain
    oracle = contract(w3, "MarginOracle", d.oracle)
    trader = Account.create().address
    nonce = oracle.functions.pause_nonce().call()
    ours = [pause_digest(d.chain_id, bytes.fromhex(d.oracle[2:]), bytes.fromhex(trader[2:]),
                         nonce, lift) for lift in (False, True)]
    ours += [pause_digest(d.chain_id, bytes.fromhex(d.oracle[2:]), None, nonce, lift)
             for lift in (False, True)]
    assert ours == [oracle.functions.pause_digest(trader).call(),
                    oracle.functions.unpause_digest(trader).call(),
                    oracle.functions.pause_all_digest().call(),
                    oracle.functions.unpause_all_digest().call()]
    assert len(set(ours)) == 4


def test_one_signer_pauses_a_trader_the_venue_refuses_new_risk_and_a_threshold_lifts_it(
        chain: tuple[Web3, Deployment], two_markets: Deployment) -> None:
    w3, _ = chain
    d = two_markets
    oracle = contract(w3, "MarginOracle", d.oracle)
    venue = contract(w3, "PerpVenue", d.venue)
    ledger = contract(w3, "CreditLedger", d.ledger)
    trader, bystander = new_account(w3), new_account(w3)
    eth = market_bytes("ETH")
    for t in (trader, bystander):
        fund(w3, d, anvil_account(0), t, 10_000 * USDC)
        transact(w3, t, venue.functions.deposit(10_000 * USDC))
        attest(w3, d, SIGNERS, 2, t.address, free_usd=5_000, mm_usd=10_000, equity_usd=1_000)
    transact(w3, trader, venue.functions.trade(eth, WAD))
    nonce = oracle.functions.pause_nonce().call()
    who = Web3.to_checksum_address(trader.address)
    # Someone outside the signer set cannot pause.
    with pytest.raises(ContractLogicError, match="unknown signer"):
        oracle.functions.pause(who, pause_sig(d, Account.create(), trader.address, nonce)).call()
    assert oracle.functions.is_liquidatable(who).call()  # flagged (equity below MM) ...
    transact(w3, new_account(w3), oracle.functions.pause(
        who, pause_sig(d, SIGNERS[2], trader.address, nonce)))  # one signer, any sender
    assert oracle.functions.is_paused(who).call()
    assert oracle.functions.credit_of(who).call()[0] == 0
    assert ledger.functions.available(who).call() == 0
    assert not oracle.functions.is_liquidatable(who).call()  # ... but a suspect flag is none
    with pytest.raises(ContractLogicError, match="trader paused"):
        venue.functions.trade(eth, WAD).call({"from": trader.address})
    with pytest.raises(ContractLogicError, match="trader paused"):
        venue.functions.withdraw(USDC).call({"from": trader.address})
    transact(w3, trader, venue.functions.trade(eth, -WAD // 2))  # reducing risk still goes
    # Only the trader: the bystander trades on.
    venue.functions.trade(eth, WAD).call({"from": bystander.address})
    # A new attestation is still accepted (the threshold stays the verifier) but grants
    # nothing while the pause holds.
    attest(w3, d, SIGNERS, 2, trader.address, free_usd=5_000)
    assert oracle.functions.credit_of(who).call()[0] == 0
    # Unpausing needs the threshold: one signature is not enough.
    with pytest.raises(ContractLogicError, match="below threshold"):
        oracle.functions.unpause(who, threshold_signatures(
            [sign_digest(SIGNERS[0], oracle.functions.unpause_digest(who).call())], 1)).call()
    transact(w3, anvil_account(1), oracle.functions.unpause(who, sigs(
        oracle.functions.unpause_digest(who).call(), SIGNERS)))
    assert not oracle.functions.is_paused(who).call()
    assert oracle.functions.pause_nonce().call() == nonce + 1
    transact(w3, trader, venue.functions.trade(eth, WAD // 2))
    # The old pause signature is spent: the nonce moved on, it recovers someone else.
    with pytest.raises(ContractLogicError, match="unknown signer"):
        oracle.functions.pause(who, pause_sig(d, SIGNERS[2], trader.address, nonce)).call()
    # And the unpause cannot be replayed.
    with pytest.raises(ContractLogicError, match="not paused"):
        oracle.functions.unpause(who, sigs(
            pause_digest(d.chain_id, bytes.fromhex(d.oracle[2:]),
                         bytes.fromhex(trader.address[2:].lower()), nonce, True),
            SIGNERS)).call()


def test_a_whole_oracle_pause_stops_every_trader_until_a_threshold_lifts_it(
        chain: tuple[Web3, Deployment]) -> None:
    w3, _ = chain
    d = deploy_chain(chain[1].rpc_url, anvil_account(0), [s.address for s in SIGNERS], 2,
                     {"ETH": 3000})
    oracle = contract(w3, "MarginOracle", d.oracle)
    traders = [Account.create().address for _ in range(2)]
    for t in traders:
        attest(w3, d, SIGNERS, 2, t, free_usd=1_000)
    transact(w3, anvil_account(1), oracle.functions.pause_all(
        pause_sig(d, SIGNERS[0], None, 0)))
    assert all(oracle.functions.is_paused(t).call() for t in traders)
    assert [oracle.functions.free_collateral(t).call() for t in traders] == [0, 0]
    with pytest.raises(ContractLogicError, match="below threshold"):
        oracle.functions.unpause_all([pause_sig(d, SIGNERS[0], None, 0, lift=True)]).call()
    transact(w3, anvil_account(1), oracle.functions.unpause_all(
        sigs(oracle.functions.unpause_all_digest().call(), SIGNERS)))
    assert [oracle.functions.free_collateral(t).call() for t in traders] == [1_000 * WAD] * 2


def test_an_attestations_signature_never_authorises_a_pause_or_its_lifting(
        chain: tuple[Web3, Deployment]) -> None:
    # Poly Network: each purpose its own EIP-712 type, so a signature over an attestation
    # (or a rotation) recovers another address when offered as a pause.
    w3, d = chain
    oracle = contract(w3, "MarginOracle", d.oracle)
    trader = Account.create().address
    f = fields(trader.lower(), 1, int(time.time()) + 3600)
    signed = sigs(digest_for(d, f), SIGNERS)
    with pytest.raises(ContractLogicError, match="unknown signer"):
        oracle.functions.pause(trader, signed[0]).call()
    with pytest.raises(ContractLogicError, match="unknown signer"):
        oracle.functions.pause_all(signed[0]).call()
    rotation = sigs(rotation_digest(d.chain_id, bytes.fromhex(d.oracle[2:]),
                                    [s.address for s in SIGNERS], 2, 0), SIGNERS)
    with pytest.raises(ContractLogicError, match="unknown signer"):
        oracle.functions.pause(trader, rotation[0]).call()
    transact(w3, anvil_account(1), oracle.functions.pause(
        trader, pause_sig(d, SIGNERS[1], trader, oracle.functions.pause_nonce().call())))
    with pytest.raises(ContractLogicError, match=r"unknown signer|unsorted"):
        oracle.functions.unpause(trader, signed).call()
    # A pause's signature is no attestation's either.
    with pytest.raises(ContractLogicError, match=r"unknown signer|unsorted"):
        oracle.functions.submit(as_struct(f), [pause_sig(d, s, trader, 0) for s in
                                               sorted(SIGNERS, key=lambda a: int(a.address, 16))
                                               ][:2]).call()
