"""The submitter on a real anvil chain whose blocks stop coming: a stuck delivery is
replaced with the same nonce and a higher fee, also by a restarted submitter, and the
attestation lands exactly once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from web3 import HTTPProvider, Web3
from web3.exceptions import TransactionNotFound

from bus.publisher import Publisher
from devnet.deploy import anvil_account, contract, deploy_chain
from devnet.localnet import LocalNet
from relayer.chain.rpc import RpcPool
from relayer.delivery.oracle import OracleChain
from relayer.delivery.outcome import Outcome
from relayer.delivery.retries import RetryStore
from relayer.delivery.submitter import Submitter, local_digest
from relayer.settings import ChainSettings, KeystoreSettings
from tests.support.verdicts import book_of, signed
from wire.records import Attestation, ChainCredit

pytestmark = pytest.mark.integration
WAD = 10**18
CHAIN = 41060


def attestation(oracle: str, trader: str) -> Attestation:
    credit = ChainCredit(chain_id=CHAIN, oracle=oracle, free_collateral_wad=5_000 * WAD,
                         digest="0x" + "00" * 32)
    a = Attestation(
        trader=trader, sequence=1, equity_wad=10_000 * WAD, maintenance_margin_wad=400 * WAD,
        initial_margin_wad=500 * WAD, health=25.0, isolated_margin_wad=900 * WAD,
        params_version=1, source_blocks=(), source_blocks_hash="0x" + "42" * 32,
        issued_at=int(time.time()), valid_until=int(time.time()) + 3600, chains=(credit,))
    signed_credit = credit.model_copy(update={"digest": local_digest(a, credit)})
    return a.model_copy(update={"chains": (signed_credit,)})


def test_a_stuck_delivery_is_outbid_with_its_nonce_and_lands_once_after_a_restart(
        localnet: LocalNet, broker: str, tmp_path: Path) -> None:
    url = localnet.chain(CHAIN, block_time_s=None)
    signer = anvil_account(1)
    d = deploy_chain(url, anvil_account(0), [signer.address], 1, {"ETH": 3000})
    w3 = Web3(HTTPProvider(url))
    sender = anvil_account(3)
    unused = KeystoreSettings(keystore=Path("unused.json"), password_file=Path("unused"))
    settings = ChainSettings(name="stuck", chain_id=CHAIN, rpc_urls=[url], oracle=d.oracle,
                             submitter=unused, confirm_timeout_s=1.5)
    record = attestation(d.oracle, "0x" + "ab" * 20)
    credit = record.chains[0]
    nonce_before = w3.eth.get_transaction_count(sender.address)

    async def deliver_once() -> tuple[Outcome, str | None]:
        # A fresh submitter each time, as after a restart: only the state files remain.
        client = RpcPool(settings)
        try:
            # The one attester (the oracle's signer, threshold 1) signed what it reproduced.
            book = book_of([signed(signer, record)])
            submitter = Submitter(OracleChain(client), sender, book, Publisher(broker), 8,
                                  RetryStore(tmp_path / f"deliveries-{CHAIN}.json"))
            result = await submitter.deliver(record, credit)
            return result.outcome, result.tx_hash
        finally:
            await client.close()

    w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
    first, first_hash = asyncio.run(deliver_once())
    assert first is Outcome.RETRY  # sent, never mined
    first_tx = w3.eth.get_transaction(first_hash)
    second, second_hash = asyncio.run(deliver_once())  # the "restarted" node
    assert second is Outcome.RETRY and second_hash != first_hash
    second_tx = w3.eth.get_transaction(second_hash)
    assert second_tx["nonce"] == first_tx["nonce"] == nonce_before
    assert second_tx["maxFeePerGas"] >= first_tx["maxFeePerGas"] * 11 // 10
    assert second_tx["maxPriorityFeePerGas"] >= first_tx["maxPriorityFeePerGas"] * 11 // 10

    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
    assert w3.eth.get_transaction_receipt(second_hash)["status"] == 1
    with pytest.raises(TransactionNotFound):  # the replaced transaction never lands
        w3.eth.get_transaction_receipt(first_hash)
    third, _ = asyncio.run(deliver_once())
    assert third is Outcome.DROPPED  # the oracle already holds it: no second effect
    assert w3.eth.get_transaction_count(sender.address) == nonce_before + 1
    latest = contract(w3, "MarginOracle", d.oracle).functions.latest(
        Web3.to_checksum_address(record.trader)).call()
    assert latest[1] == 1
    assert not (tmp_path / f"in-flight-{CHAIN}.json").read_text().strip("{} \n")
