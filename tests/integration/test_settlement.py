"""Cross-chain settlement on two real anvil chains with real ClearingVaults and a real
6-decimal token: a loss realized on chain A paid from the trader's cash on chain B,
the debit proven to A's vault by a storage proof its own Merkle-Patricia verifier
checks against a header the signer threshold vouched for. Every test that moves money
checks the venues' and vaults' books against their token balances and that the sum
over both chains is unchanged, to the unit."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import rlp
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from trie import HexaryTrie
from web3 import HTTPProvider, Web3
from web3.exceptions import ContractLogicError

from devnet.clearing import DELAY_THRESHOLD, ORDER_CAP, deploy_vault, link
from devnet.deploy import (
    Deployment,
    anvil_account,
    contract,
    deploy_chain,
    fund,
    transact,
)
from devnet.hedge import set_price
from devnet.localnet import LocalNet
from proofs.header import header_from_rpc
from relayer.delivery.retries import InFlightStore
from relayer.delivery.sending import TransactionSender
from relayer.delivery.signing import sign_digest, threshold_signatures
from relayer.settlement.accountant import Flow, audit
from relayer.settlement.receipts import order_id, receipt_slot
from relayer.settlement.settler import Stage
from relayer.settlement.vaults import order_tuple
from relayer.settlement.watcher import Watcher
from streams.settlement import VenueCash, hold_units, plan
from tests.support.credit import attest, new_account
from tests.support.settlement import SettledChain, World, sign_order, world_json
from tests.support.storage import StorageFiller
from wire.commitment import market_bytes
from wire.eip712 import source_header_digest
from wire.records import Position, SettlementOrder

pytestmark = pytest.mark.integration
USDC = 10**6
WAD = 10**18
SIGNERS = sorted((Account.create() for _ in range(3)), key=lambda a: int(a.address, 16))
THRESHOLD = 2
DEPLOYER = anvil_account(0)
SETTLER = anvil_account(2)
FINALITY = 2
ETH = market_bytes("ETH")


@dataclass(frozen=True)
class Side:
    w3: Web3
    d: Deployment
    vault: str

    @property
    def settled(self) -> SettledChain:
        return SettledChain(self.d.chain_id, self.d.rpc_url, self.d.oracle, self.vault)

    def venue(self) -> Any:
        return contract(self.w3, "PerpVenue", self.d.venue)

    def vault_contract(self, address: str | None = None) -> Any:
        return contract(self.w3, "ClearingVault", address or self.vault)

    def balance(self, who: str) -> int:
        return int(contract(self.w3, "Token", self.d.token).functions.balanceOf(
            Web3.to_checksum_address(who)).call())

    def cash(self, trader: str) -> int:
        return int(self.venue().functions.cash(Web3.to_checksum_address(trader)).call())

    def mine(self, blocks: int = 1) -> None:
        self.w3.provider.make_request("anvil_mine", [hex(blocks)])  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def sides(localnet: LocalNet) -> Iterator[tuple[Side, Side]]:
    made = []
    for chain_id in (41050, 41051):
        url = localnet.chain(chain_id, block_time_s=None)
        d = deploy_chain(url, DEPLOYER, [s.address for s in SIGNERS], THRESHOLD,
                         {"ETH": 3000, "BTC": 60_000})
        made.append(Side(Web3(HTTPProvider(url)), d, deploy_vault(d, DEPLOYER)))
    a, b = made
    link(a.d, a.vault, b.d, b.vault, DEPLOYER)
    yield a, b


def total_value(sides: tuple[Side, ...], wallets: list[str]) -> int:
    """Σ over chains of the token units held by the venues, the vaults and ``wallets``:
    what a settlement must leave unchanged."""
    total = 0
    for s in sides:
        for holder in (s.d.venue, s.vault, *wallets):
            total += s.balance(holder)
    return total


def books_balance(s: Side, traders: list[str]) -> None:
    """The venue's and the vault's books say what they hold: venue tokens == Σ cash of
    every trader here + house + insurance + liquidator reserve; vault tokens == reserve."""
    venue = s.venue()
    every = traders_on(s)
    assert set(traders) <= every
    held = sum(s.cash(t) for t in every) + venue.functions.house().call() \
        + venue.functions.insurance_fund().call() + venue.functions.liquidator_reserve().call()
    assert s.balance(s.d.venue) == held
    assert s.balance(s.vault) == s.vault_contract().functions.reserve().call()


def traders_on(s: Side) -> set[str]:
    logs = s.venue().events.PositionChanged().get_logs(from_block=0)
    return {e["args"]["trader"] for e in logs}


def trader_on_both(a: Side, b: Side, cash_a: int, cash_b: int) -> LocalAccount:
    trader = new_account(a.w3)
    b.w3.provider.make_request("anvil_setBalance", [trader.address, hex(10 * WAD)])  # type: ignore[arg-type]
    for s, usdc in ((a, cash_a), (b, cash_b)):
        fund(s.w3, s.d, DEPLOYER, trader, usdc)
        transact(s.w3, trader, s.venue().functions.deposit(usdc))
        attest(s.w3, s.d, SIGNERS, THRESHOLD, trader.address, free_usd=1_000_000)
    return trader


def venue_cash(s: Side, trader: str, buffer: int = 0) -> VenueCash:
    venue = s.venue()
    who = Web3.to_checksum_address(trader)
    positions = [Position(market=p[0].rstrip(b"\0").decode(), size_wad=p[1], entry_price_wad=p[2])
                 for p in venue.functions.positions(who).call()]
    prices = {p.market: venue_price(s, p.market) for p in positions}
    hold = hold_units(positions, prices, venue.functions.initial_margin_bps().call(),
                      venue.functions.unit_wad().call())
    return VenueCash(chain_id=s.d.chain_id, venue=s.d.venue, vault=s.vault, cash=s.cash(trader),
                     hold=hold, buffer=buffer)


def venue_price(s: Side, market: str) -> int:
    feed = contract(s.w3, "PriceFeed", s.d.feeds[market])
    return int(feed.functions.latestRoundData().call()[1]) * 10**10


def expiry(s: Side, in_s: int = 3600) -> int:
    return int(s.w3.eth.get_block("latest")["timestamp"]) + in_s


def next_nonce(s: Side, trader: str) -> int:
    return int(s.vault_contract().functions.last_nonce(Web3.to_checksum_address(trader)).call()) + 1


def equity_units(sides: tuple[Side, ...], trader: str) -> int:
    """Σ cash + unrealized P&L over both chains (18 decimals): what the next attestation's
    equity is made of."""
    total = 0
    for s in sides:
        total += s.cash(trader) * 10**12
        for p in s.venue().functions.positions(Web3.to_checksum_address(trader)).call():
            total += p[1] * (venue_price(s, p[0].rstrip(b"\0").decode()) - p[2]) // WAD
    return total


class Miner:
    """Mines a block on each chain every ``every_s`` while running: finality moves on."""

    def __init__(self, *sides: Side, every_s: float = 0.2) -> None:
        self.sides, self.every_s = sides, every_s
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.wait(self.every_s):
            for s in self.sides:
                with contextlib.suppress(Exception):
                    s.mine()

    def __enter__(self) -> Miner:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


T = TypeVar("T")


def in_world(a: Side, b: Side, state_dir: Path, use: Callable[[World], Awaitable[T]]) -> T:
    """``use`` run with a settler over both chains (its own providers, closed after)."""
    async def run() -> T:
        world = World([a.settled, b.settled], SETTLER, SIGNERS[:THRESHOLD], THRESHOLD,
                      state_dir, FINALITY)
        try:
            return await use(world)
        finally:
            await world.close()
    return asyncio.run(run())


def settle(a: Side, b: Side, order: SettlementOrder, tmp_path: Path,
           signatures: list[bytes] | None = None) -> Stage:
    source = b if order.src_chain == b.d.chain_id else a
    sigs = signatures if signatures is not None else sign_order(
        order, source.settled, SIGNERS, THRESHOLD)

    async def run(world: World) -> Stage:
        progress = await world.settler.settle(order, sigs, poll_s=0.1, timeout_s=60)
        assert progress.stage is Stage.CREDITED, progress
        return progress.stage
    with Miner(a, b):
        return in_world(a, b, tmp_path / "settler", run)


def revert_reason(call: Any, sender: LocalAccount) -> str:
    with pytest.raises(ContractLogicError) as e:
        call.call({"from": sender.address})
    return str(e.value)


def test_a_loss_realized_on_a_is_paid_from_b_conserved_to_the_unit(
        sides: tuple[Side, Side], tmp_path: Path) -> None:
    a, b = sides
    trader = trader_on_both(a, b, 1_000 * USDC, 20_000 * USDC)
    transact(a.w3, trader, a.venue().functions.trade(ETH, 1 * WAD))      # long on A
    transact(b.w3, trader, b.venue().functions.trade(ETH, -1 * WAD))     # short on B
    for s in (a, b):
        set_price(s.d, "ETH", 1_500)
    transact(a.w3, trader, a.venue().functions.trade(ETH, -1 * WAD))     # close A at −$1,500
    assert a.cash(trader.address) == -500 * USDC                          # A's venue is short
    equity_before = equity_units((a, b), trader.address)
    wallets = [trader.address, DEPLOYER.address]
    before = total_value((a, b), wallets)
    reserves = (a.vault_contract().functions.reserve().call(),
                b.vault_contract().functions.reserve().call())

    orders = plan(trader.address.lower(), [venue_cash(a, trader.address),
                                           venue_cash(b, trader.address)],
                  next_nonce(b, trader.address), expiry(b), health=2.0, health_floor=1.2)
    assert [(o.src_chain, o.dst_chain, o.amount, o.reason) for o in orders] == [
        (b.d.chain_id, a.d.chain_id, 500 * USDC, "realized loss")]
    assert settle(a, b, orders[0], tmp_path) is Stage.CREDITED

    assert a.cash(trader.address) == 0                                   # A made whole
    assert b.cash(trader.address) == 19_500 * USDC
    assert a.vault_contract().functions.reserve().call() == reserves[0] - 500 * USDC
    assert b.vault_contract().functions.reserve().call() == reserves[1] + 500 * USDC
    assert total_value((a, b), wallets) == before                         # nothing made or lost
    for s in (a, b):
        books_balance(s, [trader.address])
    assert equity_units((a, b), trader.address) == equity_before          # equity unchanged
    oid = order_id(orders[0].trader, orders[0].nonce)
    assert a.vault_contract().functions.credited(oid).call()
    credited = a.vault_contract().events.Credited().get_logs(from_block=0)
    assert [e["args"]["amount"] for e in credited if e["args"]["order_id"] == oid] == [500 * USDC]


@dataclass(frozen=True)
class Debited:
    order: SettlementOrder
    header_rlp: bytes
    header_sigs: list[bytes]
    account_proof: list[bytes]
    storage_proof: list[bytes]

    def credit_args(self, order: SettlementOrder | None = None, **changes: Any) -> tuple[Any, ...]:
        args = {"header": self.header_rlp, "sigs": self.header_sigs,
                "account": self.account_proof, "storage": self.storage_proof, **changes}
        return (order_tuple(order or self.order), args["header"], args["sigs"],
                args["account"], args["storage"])


def new_order(a: Side, b: Side, trader: str, amount: int, nonce: int | None = None,
              **changes: Any) -> SettlementOrder:
    """An order moving ``amount`` of the trader's cash on B to A."""
    fields = dict(trader=trader.lower(), nonce=nonce or next_nonce(b, trader),
                  src_chain=b.d.chain_id, src_vault=b.vault, src_venue=b.d.venue,
                  dst_chain=a.d.chain_id, dst_vault=a.vault, dst_venue=a.d.venue,
                  amount=amount, expiry=expiry(b), reason="test") | changes
    return SettlementOrder(**fields)


def debit(b: Side, order: SettlementOrder) -> None:
    transact(b.w3, SETTLER, b.vault_contract().functions.debit(
        order_tuple(order), sign_order(order, b.settled, SIGNERS, THRESHOLD)))


def proven(a: Side, b: Side, order: SettlementOrder, tmp_path: Path) -> Debited:
    """The order's receipt in B's newest final block, proven, and that header vouched
    for by the signers (for A)."""
    b.mine(FINALITY)

    async def run(world: World) -> Debited:
        vault = world.settler.vaults[b.d.chain_id]
        proof = await vault.prove(order, await vault.finalized_height())
        sigs = await world.vouchers.vouch(a.d.chain_id, b.d.chain_id,
                                          proof.header.number, proof.header.hash)
        return Debited(order, proof.header.rlp, sigs, list(proof.account_proof),
                       list(proof.storage_proof))
    return in_world(a, b, tmp_path / "prover", run)


def funded_trader(a: Side, b: Side, cash_b: int = 10_000 * USDC) -> LocalAccount:
    return trader_on_both(a, b, 100 * USDC, cash_b)


def test_every_forged_or_misdirected_credit_reverts_and_the_real_one_lands_once(
        sides: tuple[Side, Side], tmp_path: Path) -> None:
    a, b = sides
    trader = funded_trader(a, b)
    first = new_order(a, b, trader.address, 300 * USDC)
    debit(b, first)
    second = new_order(a, b, trader.address, 200 * USDC)
    debit(b, second)
    one, two = proven(a, b, first, tmp_path), proven(a, b, second, tmp_path)
    credit = a.vault_contract().functions.credit

    def refused(*args: Any) -> str:
        return revert_reason(credit(*args), SETTLER)

    # A forged proof: one byte of the storage leaf changed.
    forged_leaf = bytearray(one.storage_proof[-1])
    forged_leaf[-1] ^= 1
    assert "node hash mismatch" in refused(*one.credit_args(storage=[
        *one.storage_proof[:-1], bytes(forged_leaf)]))
    # A proof cut short, and one with a node too many.
    assert "proof incomplete" in refused(*one.credit_args(storage=one.storage_proof[:-1]))
    assert "extra nodes" in refused(*one.credit_args(storage=[*one.storage_proof,
                                                              one.storage_proof[-1]]))
    # A credit larger than the debit: the receipt holds the hash of the order as debited.
    bigger = first.model_copy(update={"amount": first.amount + 1})
    assert "receipt is for another order" in refused(*one.credit_args(order=bigger))
    # A valid old proof with a new payload: order two's fields under order one's proof
    # (another slot: the proof does not reach it).
    reason = refused(*one.credit_args(order=second))
    assert any(r in reason for r in ("node hash mismatch", "no receipt", "receipt is for another"))
    # A proof of the wrong value: order two's slot proof offered for order one.
    reason = refused(*one.credit_args(storage=two.storage_proof))
    assert any(r in reason for r in ("node hash mismatch", "no receipt", "receipt is for another"))
    # An order for another chain or another vault (the deployer's vaults have the same
    # address on both chains: the chain id tells them apart).
    elsewhere = first.model_copy(update={"dst_vault": a.d.venue})
    assert "another chain or vault" in refused(*one.credit_args(order=elsewhere))
    assert "another chain or vault" in revert_reason(
        b.vault_contract().functions.credit(*one.credit_args()), SETTLER)
    # A header the signers did not vouch for: signed by strangers, or another header.
    strangers = [Account.create() for _ in range(THRESHOLD)]
    header_hash = Web3.keccak(one.header_rlp)
    number = rlp.decode(one.header_rlp)[8]
    digest = source_header_digest(a.d.chain_id, bytes.fromhex(a.d.oracle[2:]), b.d.chain_id,
                                  int.from_bytes(number, "big"), bytes(header_hash))
    assert "unknown signer" in refused(*one.credit_args(
        sigs=threshold_signatures([sign_digest(s, digest) for s in strangers], THRESHOLD)))
    other_header = rlp.encode([*rlp.decode(one.header_rlp)[:14], b"\x42" * 8,
                               *rlp.decode(one.header_rlp)[15:]])
    assert "unknown signer" in refused(*one.credit_args(header=other_header))

    # The real credit lands once; a second credit and a replayed debit both revert.
    cash_a = a.cash(trader.address)
    transact(a.w3, SETTLER, credit(*one.credit_args()))
    assert a.cash(trader.address) == cash_a + 300 * USDC
    assert "already credited" in refused(*one.credit_args())
    assert "nonce already used" in revert_reason(b.vault_contract().functions.debit(
        order_tuple(first), sign_order(first, b.settled, SIGNERS, THRESHOLD)), SETTLER)
    # An order for another chain, or signed below the threshold, is not debited.
    assert "another chain or vault" in revert_reason(a.vault_contract().functions.debit(
        order_tuple(new_order(a, b, trader.address, 1)),
        sign_order(new_order(a, b, trader.address, 1), b.settled, SIGNERS, THRESHOLD)), SETTLER)
    lone = new_order(a, b, trader.address, 1)
    assert "below threshold" in revert_reason(b.vault_contract().functions.debit(
        order_tuple(lone), sign_order(lone, b.settled, SIGNERS, 1)), SETTLER)
    transact(a.w3, SETTLER, credit(*two.credit_args()))
    for s in (a, b):
        books_balance(s, [trader.address])


def test_a_look_alike_contract_is_not_a_source(sides: tuple[Side, Side], tmp_path: Path) -> None:
    """A contract on B with the vault's storage layout, holding a 'receipt' for an order
    nobody debited: its slot is proven, but A believes only the registered vault."""
    a, b = sides
    trader = funded_trader(a, b)
    fake = StorageFiller(b.d.rpc_url)
    order = new_order(a, b, trader.address, 1_000 * USDC, src_vault=str(fake.address).lower())
    oid = order_id(order.trader, order.nonce)
    fake.put({int.from_bytes(oid, "big"): int.from_bytes(order.struct_hash(), "big")})
    debited = proven(a, b, order, tmp_path)        # its proof verifies, off chain too
    assert "unregistered source vault" in revert_reason(
        a.vault_contract().functions.credit(*debited.credit_args()), SETTLER)
    # Naming the registered vault with the look-alike's account proof: wrong account.
    as_real = order.model_copy(update={"src_vault": b.vault})
    reason = revert_reason(a.vault_contract().functions.credit(
        *debited.credit_args(order=as_real)), SETTLER)
    assert any(r in reason for r in ("node hash mismatch", "no receipt", "account absent"))


def test_caps_lanes_delays_and_halts(sides: tuple[Side, Side], tmp_path: Path) -> None:
    a, b = sides
    trader = funded_trader(a, b, cash_b=1_200_000 * USDC)
    vb, va = b.vault_contract(), a.vault_contract()
    over = new_order(a, b, trader.address, ORDER_CAP + 1)
    assert "order cap" in revert_reason(vb.functions.debit(
        order_tuple(over), sign_order(over, b.settled, SIGNERS, THRESHOLD)), SETTLER)
    # A lane of 10 USDC, refilled at nothing: the eleventh unit waits.
    transact(b.w3, DEPLOYER, vb.functions.open_lane(a.d.chain_id, 0, 10 * USDC, 0))
    try:
        small = new_order(a, b, trader.address, 11 * USDC)
        assert "rate limit" in revert_reason(vb.functions.debit(
            order_tuple(small), sign_order(small, b.settled, SIGNERS, THRESHOLD)), SETTLER)
    finally:
        transact(b.w3, DEPLOYER, vb.functions.open_lane(a.d.chain_id, 0, 2_000_000 * USDC,
                                                        100 * USDC))
    # A large credit waits out its delay; the guardian freezes it; the owner lets it go.
    large = new_order(a, b, trader.address, DELAY_THRESHOLD)
    debit(b, large)
    debited = proven(a, b, large, tmp_path)
    cash_a = a.cash(trader.address)
    transact(a.w3, SETTLER, va.functions.credit(*debited.credit_args()))
    assert a.cash(trader.address) == cash_a                       # queued, not paid
    oid = order_id(large.trader, large.nonce)
    assert "still in its delay" in revert_reason(va.functions.release(order_tuple(large)), SETTLER)
    transact(a.w3, DEPLOYER, va.functions.freeze(oid, True))
    a.w3.provider.make_request("evm_increaseTime", [3_601])  # type: ignore[arg-type]
    a.mine()
    assert "frozen" in revert_reason(va.functions.release(order_tuple(large)), SETTLER)
    transact(a.w3, DEPLOYER, va.functions.freeze(oid, False))
    transact(a.w3, SETTLER, va.functions.release(order_tuple(large)))
    assert a.cash(trader.address) == cash_a + DELAY_THRESHOLD
    assert "already credited" in revert_reason(va.functions.credit(*debited.credit_args()), SETTLER)
    # A halted chain stops both sides; the settler waits and says why.
    transact(a.w3, DEPLOYER, va.functions.halt(b.d.chain_id))
    try:
        order = new_order(a, b, trader.address, 5 * USDC)
        debit(b, order)
        debited = proven(a, b, order, tmp_path)
        assert "chain halted" in revert_reason(va.functions.credit(*debited.credit_args()), SETTLER)
        assert step(a, b, order, tmp_path).stage is Stage.HALTED
    finally:
        transact(a.w3, DEPLOYER, va.functions.resume(b.d.chain_id))
    assert settle(a, b, order, tmp_path) is Stage.CREDITED
    for s in (a, b):
        books_balance(s, [trader.address])


def step(a: Side, b: Side, order: SettlementOrder, tmp_path: Path) -> Any:
    """One settler step, no blocks mined meanwhile."""
    sigs = sign_order(order, b.settled, SIGNERS, THRESHOLD)

    return in_world(a, b, tmp_path / "stepper", lambda w: w.settler.step(order, sigs))


def vouch(a: Side, b: Side, number: int, block_hash: bytes, tmp_path: Path) -> Any:
    return in_world(a, b, tmp_path / "voucher", lambda w: w.vouchers.vouch(
        a.d.chain_id, b.d.chain_id, number, block_hash))


def events_of(vault: Any, name: str, oid: bytes) -> list[Any]:
    return [e for e in getattr(vault.events, name)().get_logs(from_block=0)
            if e["args"]["order_id"] == oid]


def test_a_debit_orphaned_by_a_reorg_is_never_credited_and_the_order_runs_again(
        sides: tuple[Side, Side], tmp_path: Path) -> None:
    a, b = sides
    trader = funded_trader(a, b)
    cash_a, cash_b = a.cash(trader.address), b.cash(trader.address)
    order = new_order(a, b, trader.address, 250 * USDC)
    oid = order_id(order.trader, order.nonce)
    first = step(a, b, order, tmp_path)                     # sends the debit
    assert first.stage is Stage.ISSUED and first.tx_hash
    assert step(a, b, order, tmp_path).stage is Stage.DEBITED   # not final yet
    debit_block = b.w3.eth.get_transaction_receipt(first.tx_hash)["blockNumber"]
    orphan = b.w3.eth.get_block(debit_block)
    b.w3.provider.make_request("anvil_reorg", [b.w3.eth.block_number - debit_block + 1, []])  # type: ignore[arg-type]
    assert b.w3.eth.get_block(debit_block)["hash"] != orphan["hash"]
    assert bytes(b.vault_contract().functions.receipts(oid).call()) == bytes(32)
    assert b.cash(trader.address) == cash_b                  # the debit is gone with its block
    # Nobody vouches for the orphaned header, so its proof is worth nothing on A.
    b.mine(FINALITY + 1)
    with pytest.raises(Exception, match="on this attester's providers"):
        vouch(a, b, debit_block, bytes(orphan["hash"]), tmp_path)
    assert not a.vault_contract().functions.credited(oid).call()
    # The same order runs again (same nonce: at most one debit of it can ever stand).
    assert settle(a, b, order, tmp_path) is Stage.CREDITED
    assert len(events_of(b.vault_contract(), "Debited", oid)) == 1
    assert len(events_of(a.vault_contract(), "Credited", oid)) == 1
    assert (a.cash(trader.address), b.cash(trader.address)) == (cash_a + 250 * USDC,
                                                                cash_b - 250 * USDC)
    for s in (a, b):
        books_balance(s, [trader.address])


def test_a_settler_killed_between_debit_and_credit_finishes_exactly_once(
        sides: tuple[Side, Side], tmp_path: Path) -> None:
    a, b = sides
    trader = funded_trader(a, b)
    cash_a, cash_b = a.cash(trader.address), b.cash(trader.address)
    order = new_order(a, b, trader.address, 420 * USDC)
    oid = order_id(order.trader, order.nonce)
    world = tmp_path / "world.json"
    world.write_text(world_json([a.settled, b.settled], SETTLER, SIGNERS[:THRESHOLD],
                                THRESHOLD, FINALITY))
    spec = tmp_path / "order.json"
    spec.write_text(json.dumps({"order": order.model_dump(), "signatures": [
        s.hex() for s in sign_order(order, b.settled, SIGNERS, THRESHOLD)]}))
    command = [sys.executable, "-m", "tests.support.settlement", str(world), str(spec),
               str(tmp_path / "state")]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while bytes(b.vault_contract().functions.receipts(oid).call()) != order.struct_hash():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert b.cash(trader.address) == cash_b - 420 * USDC     # debited ...
    assert not a.vault_contract().functions.credited(oid).call()  # ... and not credited
    with Miner(a, b):
        done = subprocess.run(command, capture_output=True, timeout=120, check=True)
    assert json.loads(done.stdout.decode().strip().splitlines()[-1])["stage"] == "credited"
    assert len(events_of(b.vault_contract(), "Debited", oid)) == 1
    assert len(events_of(a.vault_contract(), "Credited", oid)) == 1
    assert a.cash(trader.address) == cash_a + 420 * USDC
    for s in (a, b):
        books_balance(s, [trader.address])


def test_an_intent_keeps_a_buffer_on_b_while_global_health_allows(
        sides: tuple[Side, Side], tmp_path: Path) -> None:
    """'Keep at least $5,000 on chain B': trading on B uses it up (a realized loss), and
    the service tops it up from A, but not while global health is below the floor."""
    a, b = sides
    trader = trader_on_both(a, b, 20_000 * USDC, 6_000 * USDC)
    transact(b.w3, trader, b.vault_contract().functions.set_buffer(
        Web3.to_checksum_address(b.d.venue), 5_000 * USDC))
    buffer = b.vault_contract().functions.buffer_of(
        trader.address, Web3.to_checksum_address(b.d.venue)).call()
    assert buffer == 5_000 * USDC
    for s in (a, b):
        set_price(s.d, "ETH", 3_000)
    transact(b.w3, trader, b.venue().functions.trade(ETH, 2 * WAD))
    set_price(b.d, "ETH", 1_000)
    transact(b.w3, trader, b.venue().functions.trade(ETH, -2 * WAD))   # −$4,000 on B
    set_price(b.d, "ETH", 3_000)
    assert b.cash(trader.address) == 2_000 * USDC
    venues = [venue_cash(a, trader.address), venue_cash(b, trader.address, buffer=buffer)]
    assert plan(trader.address.lower(), venues, next_nonce(a, trader.address), expiry(a),
                health=1.1, health_floor=1.2) == []        # below the floor: buffers wait
    orders = plan(trader.address.lower(), venues, next_nonce(a, trader.address), expiry(a),
                  health=3.0, health_floor=1.2)
    assert [(o.src_chain, o.dst_chain, o.amount, o.reason) for o in orders] == [
        (a.d.chain_id, b.d.chain_id, 3_000 * USDC, "buffer")]
    before = total_value((a, b), [trader.address, DEPLOYER.address])
    assert settle(a, b, orders[0], tmp_path) is Stage.CREDITED
    assert b.cash(trader.address) == 5_000 * USDC
    assert total_value((a, b), [trader.address, DEPLOYER.address]) == before


SIZES = [-3, -2, -1, 1, 2, 3]


@hypothesis_settings(max_examples=5, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cash=st.tuples(st.integers(100, 3_000), st.integers(2_000, 30_000)),
       sizes=st.tuples(st.sampled_from(SIZES), st.sampled_from(SIZES)),
       wiggle=st.lists(st.integers(1_000, 5_000), max_size=2),
       move=st.integers(300, 1_500), close_b=st.booleans())
def test_value_is_conserved_over_a_settlement_cycle(
        sides: tuple[Side, Side], tmp_path: Path, cash: tuple[int, int],
        sizes: tuple[int, int], wiggle: list[int], move: int, close_b: bool) -> None:
    """Random books and price paths, ending against A's leg, which is closed: whatever
    the plan moves, the sum over both chains of trader cash, venue funds and reserves
    is the same after the cycle, to the unit, each venue's and vault's books match their
    tokens, equity is unchanged, and A is covered as far as B can spare."""
    a, b = sides
    for s in (a, b):
        set_price(s.d, "ETH", 3_000)
    trader = trader_on_both(a, b, cash[0] * USDC, cash[1] * USDC)
    for s, size in zip((a, b), sizes, strict=True):
        transact(s.w3, trader, s.venue().functions.trade(ETH, size * WAD))
    final = 3_000 - move if sizes[0] > 0 else 3_000 + move
    for price in (*wiggle, final):
        for s in (a, b):
            set_price(s.d, "ETH", price)
    transact(a.w3, trader, a.venue().functions.trade(ETH, -sizes[0] * WAD))
    if close_b:
        transact(b.w3, trader, b.venue().functions.trade(ETH, -sizes[1] * WAD))
    wallets = [trader.address, DEPLOYER.address]
    before = total_value((a, b), wallets)
    equity = equity_units((a, b), trader.address)
    venues = [venue_cash(a, trader.address), venue_cash(b, trader.address)]
    orders = plan(trader.address.lower(), venues,
                  max(next_nonce(a, trader.address), next_nonce(b, trader.address)),
                  expiry(a), health=2.0, health_floor=1.2)
    need, spare = -min(venues[0].cash, 0), max(venues[1].cash - venues[1].hold, 0)
    assert [o.amount for o in orders] == ([min(need, spare)] if min(need, spare) else [])
    for order in orders:
        assert settle(a, b, order, tmp_path) is Stage.CREDITED
    assert total_value((a, b), wallets) == before
    assert equity_units((a, b), trader.address) == equity
    for s in (a, b):
        books_balance(s, [trader.address])
    assert a.cash(trader.address) == venues[0].cash + min(need, spare)


def forged_receipt(b: Side, order: SettlementOrder) -> tuple[bytes, list[bytes], list[bytes]]:
    """A header of B whose state root is a trie made up here: the registered vault's
    account holding a receipt for ``order``, which nobody debited. Proofs of it verify;
    only a compromised threshold would vouch for the header."""
    slot = receipt_slot(order).to_bytes(32, "big")
    value = int.from_bytes(order.struct_hash(), "big")
    storage = HexaryTrie({})
    storage[Web3.keccak(slot)] = rlp.encode(value.to_bytes((value.bit_length() + 7) // 8, "big"))
    vault = bytes.fromhex(b.vault[2:])
    state = HexaryTrie({})
    state[Web3.keccak(vault)] = rlp.encode([1, 0, storage.root_hash, Web3.keccak(b"")])
    latest = b.w3.provider.make_request("eth_getBlockByNumber", ["latest", False])  # type: ignore[arg-type]
    fields = rlp.decode(header_from_rpc(latest["result"]).rlp)
    fields[3] = state.root_hash
    return (rlp.encode(fields),
            [rlp.encode(n) for n in state.get_proof(Web3.keccak(vault))],
            [rlp.encode(n) for n in storage.get_proof(Web3.keccak(slot))])


def test_a_compromised_threshold_cannot_release_a_large_credit_past_the_watcher(
        sides: tuple[Side, Side], tmp_path: Path) -> None:
    """Two stolen signer keys vouch for a made-up header of B proving a receipt nobody
    debited; A's vault believes it (that is what a threshold is) but a credit this large
    waits out its delay, and the watcher, finding no debit behind it, freezes it."""
    a, b = sides
    trader = funded_trader(a, b)
    order = new_order(a, b, trader.address, DELAY_THRESHOLD)
    header, account_proof, storage_proof = forged_receipt(b, order)
    number = int.from_bytes(rlp.decode(header)[8], "big")
    digest = source_header_digest(a.d.chain_id, bytes.fromhex(a.d.oracle[2:]), b.d.chain_id,
                                  number, bytes(Web3.keccak(header)))
    stolen = threshold_signatures([sign_digest(s, digest) for s in SIGNERS[:2]], THRESHOLD)
    va = a.vault_contract()
    cash_a = a.cash(trader.address)
    transact(a.w3, SETTLER, va.functions.credit(order_tuple(order), header, stolen,
                                                account_proof, storage_proof))
    oid = order_id(order.trader, order.nonce)
    assert va.functions.queued_hash(oid).call() == order.struct_hash()
    assert a.cash(trader.address) == cash_a                   # queued, not paid

    async def watch(world: World) -> list[bytes]:
        vaults = world.settler.vaults
        guardians = {cid: TransactionSender(v, DEPLOYER, InFlightStore(
            tmp_path / f"guardian-{cid}.json"), "guardian") for cid, v in vaults.items()}
        return await Watcher(vaults, guardians, findings=tmp_path / "violations.json").step()
    a.mine(FINALITY)
    b.mine(FINALITY)
    assert in_world(a, b, tmp_path / "watcher", watch) == [oid]
    assert va.functions.frozen(oid).call()
    assert json.loads((tmp_path / "violations.json").read_text()) == [
        f"order 0x{oid.hex()} queued on {a.d.chain_id} for {DELAY_THRESHOLD} without that "
        f"debit on {b.d.chain_id}"]
    a.w3.provider.make_request("evm_increaseTime", [3_601])  # type: ignore[arg-type]
    a.mine()
    assert "frozen" in revert_reason(va.functions.release(order_tuple(order)), SETTLER)
    assert a.cash(trader.address) == cash_a


def test_the_accountant_holds_every_credit_of_this_module_against_its_debit(
        sides: tuple[Side, Side]) -> None:
    """Run last: every credit any test above released on either chain has its debit,
    lane and amount alike; the queued-then-released credit counts once."""
    debits, credits = [], []
    for s in sides:
        vault = s.vault_contract()
        debits += [Flow(bytes(e["args"]["order_id"]), s.d.chain_id, e["args"]["dst_chain"],
                        e["args"]["amount"])
                   for e in vault.events.Debited().get_logs(from_block=0)]
        credits += [Flow(bytes(e["args"]["order_id"]), e["args"]["src_chain"], s.d.chain_id,
                         e["args"]["amount"])
                    for e in vault.events.Credited().get_logs(from_block=0)]
    ledger = audit(debits, credits)
    assert len(credits) >= 8 and ledger.violations == []
    a, b = sides
    for s, other in ((a, b), (b, a)):
        lane = (other.d.chain_id, s.d.chain_id)
        assert s.vault_contract().functions.credited_total(other.d.chain_id).call() == \
            ledger.credited.get(lane, 0)
        assert other.vault_contract().functions.debited_total(s.d.chain_id).call() == \
            ledger.debited.get(lane, 0)
