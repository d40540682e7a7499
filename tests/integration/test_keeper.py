"""The keeper as its own process on a real chain and broker: killed with SIGKILL after
it sent a liquidation and before it saw the receipt, it is started again over the same
state directory and closes nothing twice."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from web3 import HTTPProvider, Web3

from bus.admin import ensure_topics
from devnet.deploy import Deployment, anvil_account, contract, deploy_chain
from devnet.hedge import deposit, set_price, trade
from devnet.localnet import REPO, LocalNet
from relayer.delivery.keeper import LegStore
from relayer.delivery.retries import InFlightStore
from relayer.delivery.signing import write_keystore
from relayer.settings import ChainSettings
from relayer.statedir import StateDir
from tests.support.credit import attest
from wire.records import Liquidation, LiquidationLeg

pytestmark = pytest.mark.integration
WAD = 10**18
SIGNERS = [Account.create() for _ in range(3)]
CHAIN_ID = 41030


@pytest.fixture(scope="module")
def chain(localnet: LocalNet, broker: str) -> Iterator[tuple[Web3, Deployment]]:
    """A chain per broker: the test liquidates its trader, so a second broker's run
    needs a chain where that trader is open again."""
    url = localnet.chain(CHAIN_ID, block_time_s=None)
    d = deploy_chain(url, anvil_account(0), [s.address for s in SIGNERS], 2, {"ETH": 3000})
    yield Web3(HTTPProvider(url)), d


def keeper_process(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "tests.support.keeper_once", *args],
                            cwd=REPO, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def test_a_keeper_killed_mid_liquidation_resumes_without_closing_twice(
        chain: tuple[Web3, Deployment], broker: str, tmp_path: Path) -> None:
    w3, d = chain
    asyncio.run(ensure_topics(broker, 1))
    trader = anvil_account(2)
    deposit(d, trader, 1_000)
    attest(w3, d, SIGNERS, 2, trader.address, free_usd=50_000)
    trade(d, trader, "ETH", 2.0)
    set_price(d, "ETH", 2_600)
    attest(w3, d, SIGNERS, 2, trader.address, free_usd=0, equity_usd=900, mm_usd=1_000)
    sequence = contract(w3, "MarginOracle", d.oracle).functions.latest(
        trader.address).call()[1]

    keeper = write_keystore(anvil_account(8), tmp_path / "keys", "keeper", "pw")
    submitter = write_keystore(anvil_account(1), tmp_path / "keys", "submitter", "pw")
    settings = ChainSettings(name="k", chain_id=d.chain_id, rpc_urls=[d.rpc_url], oracle=d.oracle,
                             venues=[d.venue], submitter=submitter, keeper=keeper,
                             confirm_timeout_s=60.0)
    leg = LiquidationLeg(chain_id=d.chain_id, venue=d.venue, market="ETH", size_wad=2 * WAD,
                         close_wad=WAD // 2)
    plan = Liquidation(trader=trader.address.lower(), sequence=sequence, health=0.9,
                       health_after=1.2, legs=(leg,), reason="test")
    (tmp_path / "chain.json").write_text(settings.model_dump_json())
    (tmp_path / "plan.json").write_text(plan.model_dump_json())
    state = StateDir(tmp_path / "state")
    args = [str(tmp_path / "chain.json"), str(tmp_path / "plan.json"), str(state.root), broker]
    in_flight = state.keeper_in_flight(d.chain_id)

    # Blocks only when asked: the liquidation waits in the mempool while the keeper waits
    # for its receipt, and is killed there.
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        first = keeper_process(args, tmp_path / "keeper.log")
        deadline = time.monotonic() + 60
        sent = None
        while sent is None and time.monotonic() < deadline:
            entries = InFlightStore(in_flight).entries if in_flight.exists() else {}
            for entry in entries.values():
                if w3.eth.get_transaction(entry.tx_hash) is not None:  # type: ignore[arg-type]
                    sent = entry
            time.sleep(0.2)
        assert sent is not None, (tmp_path / "keeper.log").read_text()
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        w3.provider.make_request("evm_mine", [])
    finally:
        w3.provider.make_request("evm_setAutomine", [True])

    second = keeper_process(args, tmp_path / "keeper.log")
    assert second.wait(120) == 0, (tmp_path / "keeper.log").read_text()
    venue = contract(w3, "PerpVenue", d.venue)
    events = [e for e in venue.events.Liquidated().get_logs(from_block=0)
              if e.args.trader == trader.address]
    assert [int(e.args.size) for e in events] == [WAD // 2]  # once, the planned half ETH
    assert "0x" + events[0].transactionHash.hex().removeprefix("0x") == sent.tx_hash
    assert venue.functions.positions(trader.address).call()[0][1] == 3 * WAD // 2
    (entry,) = LegStore(state.keeper_legs(d.chain_id)).entries.values()
    assert (entry.status, entry.tx_hash) == ("liquidated", sent.tx_hash)
    assert not InFlightStore(in_flight).entries

    # Started again on the same plan (a redelivery): nothing more is closed.
    third = keeper_process(args, tmp_path / "keeper.log")
    assert third.wait(120) == 0
    assert len([e for e in venue.events.Liquidated().get_logs(from_block=0)
                if e.args.trader == trader.address]) == 1
