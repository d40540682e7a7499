"""A submitter whose chain halted delivers nothing: the delivery waits, with the reason,
in its retry state."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from eth_account import Account

from bus.publisher import Publisher
from relayer.chain.rpc import RpcPool
from relayer.delivery.gathering import SignatureBook
from relayer.delivery.oracle import OracleChain
from relayer.delivery.outcome import Outcome
from relayer.delivery.retries import RetryStore
from relayer.delivery.submitter import Submitter
from relayer.settings import ChainSettings, KeystoreSettings
from wire.records import Attestation, ChainCredit


def test_a_halted_chain_gets_no_delivery(tmp_path: Path) -> None:
    unused = KeystoreSettings(keystore=Path("unused.json"), password_file=Path("unused"))
    # Nothing listens on port 1: any RPC call would fail, and none must be made.
    settings = ChainSettings(name="h", chain_id=41070, rpc_urls=["http://127.0.0.1:1"],
                             oracle="0x" + "aa" * 20, submitter=unused)
    credit = ChainCredit(chain_id=41070, oracle="0x" + "aa" * 20, free_collateral_wad=1,
                         digest="0x" + "00" * 32)
    attestation = Attestation(
        trader="0x" + "ab" * 20, sequence=1, equity_wad=1, maintenance_margin_wad=0,
        initial_margin_wad=0, health=1e9, isolated_margin_wad=0, params_version=1,
        source_blocks=(), source_blocks_hash="0x" + "00" * 32, issued_at=int(time.time()),
        valid_until=int(time.time()) + 3600, chains=(credit,))

    async def deliver() -> tuple[Outcome, str]:
        client = RpcPool(settings)
        try:
            submitter = Submitter(OracleChain(client), Account.create(), SignatureBook(),
                                  Publisher("127.0.0.1:1"), 3,
                                  RetryStore(tmp_path / "deliveries-41070.json"),
                                  halted={41070: "reorg below finality at block 12"})
            result = await submitter.deliver(attestation, credit)
            return result.outcome, result.reason
        finally:
            await client.close()

    outcome, reason = asyncio.run(deliver())
    assert outcome is Outcome.RETRY
    assert reason == "chain halted: reorg below finality at block 12"
