"""A settler over real chains for tests: each chain's vault behind an ``RpcPool``, a
``TransactionSender`` per chain from one settler account, and the header witness made
of in-process attesters (``attester.headers.HeaderVoucher``, each asking the chains
through its own providers), collected to the threshold as the settlement service will
collect them from the log.

    python -m tests.support.settlement <world json> <order json> <state dir>

runs one order to its end as a process of its own (a test SIGKILLs it mid-way).
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from attester.headers import HeaderVoucher
from attester.settings import AttesterChain
from attester.witness import Quorum, Witness
from relayer.chain.rpc import RpcPool
from relayer.delivery.retries import InFlightStore
from relayer.delivery.sending import TransactionSender
from relayer.delivery.signing import Signature, sign_digest, threshold_signatures
from relayer.settings import ChainSettings, KeystoreSettings
from relayer.settlement.settler import NotVouched, Settler
from relayer.settlement.vaults import VaultChain
from wire.eip712 import typed_data_digest
from wire.records import SettlementOrder

UNUSED_KEYSTORE = KeystoreSettings(keystore=Path("unused.json"), password_file=Path("unused"))


@dataclass(frozen=True)
class SettledChain:
    chain_id: int
    rpc_url: str
    oracle: str
    vault: str


def sign_order(order: SettlementOrder, source: SettledChain, signers: list[LocalAccount],
               threshold: int) -> list[bytes]:
    """The threshold's signatures over the order, under the source oracle's domain."""
    digest = typed_data_digest(source.chain_id, bytes.fromhex(source.oracle[2:]),
                               order.struct_hash())
    return threshold_signatures([sign_digest(s, digest) for s in signers], threshold)


class Vouchers:
    """``HeaderWitness`` over attesters in this process."""

    def __init__(self, vouchers: list[HeaderVoucher], threshold: int) -> None:
        self.vouchers = vouchers
        self.threshold = threshold

    async def vouch(self, dst_chain: int, src_chain: int, number: int,
                    block_hash: bytes) -> list[bytes]:
        answers = await asyncio.gather(*(v.vouch(dst_chain, src_chain, number, block_hash)
                                         for v in self.vouchers))
        signed = [a for a in answers if isinstance(a, Signature)]
        if len(signed) < self.threshold:
            raise NotVouched("; ".join(a for a in answers if isinstance(a, str)))
        return threshold_signatures(signed, self.threshold)


class World:
    """The settler and what it runs on; ``close`` when done."""

    def __init__(self, chains: list[SettledChain], settler: LocalAccount,
                 signers: list[LocalAccount], threshold: int, state_dir: Path,
                 finality_blocks: int) -> None:
        self.pools = [RpcPool(ChainSettings(
            name=f"chain-{c.chain_id}", chain_id=c.chain_id, rpc_urls=[c.rpc_url],  # type: ignore[list-item]
            oracle=c.oracle, submitter=UNUSED_KEYSTORE, clearing_vault=c.vault,
            finality_blocks=finality_blocks, confirm_timeout_s=20.0)) for c in chains]
        vaults = {p.settings.chain_id: VaultChain(p) for p in self.pools}
        state_dir.mkdir(parents=True, exist_ok=True)
        senders = {cid: TransactionSender(v, settler, InFlightStore(
            state_dir / f"settle-in-flight-{cid}.json"), "settler") for cid, v in vaults.items()}
        attester_chains = [AttesterChain(name=f"chain-{c.chain_id}", chain_id=c.chain_id,
                                         rpc_urls=[c.rpc_url],  # type: ignore[list-item]
                                         finality_blocks=finality_blocks, oracle=c.oracle)
                           for c in chains]
        self.witnesses = [Witness({c.chain_id: Quorum(c) for c in attester_chains})
                          for _ in signers]
        self.vouchers = Vouchers([HeaderVoucher(attester_chains, s, w)
                                  for s, w in zip(signers, self.witnesses, strict=True)],
                                 threshold)
        self.settler = Settler(vaults, senders, self.vouchers)

    async def close(self) -> None:
        for p in self.pools:
            await p.close()
        for w in self.witnesses:
            await w.close()


def world_json(chains: list[SettledChain], settler: LocalAccount, signers: list[LocalAccount],
               threshold: int, finality_blocks: int) -> str:
    return json.dumps({"chains": [c.__dict__ for c in chains],
                       "settler": settler.key.hex(), "signers": [s.key.hex() for s in signers],
                       "threshold": threshold, "finality_blocks": finality_blocks})


async def main(world_path: str, order_path: str, state_dir: str) -> None:
    spec: dict[str, Any] = json.loads(Path(world_path).read_text())
    order_spec = json.loads(Path(order_path).read_text())
    order = SettlementOrder.model_validate(order_spec["order"])
    signatures = [bytes.fromhex(s) for s in order_spec["signatures"]]
    world = World([SettledChain(**c) for c in spec["chains"]],
                  Account.from_key(spec["settler"]),
                  [Account.from_key(k) for k in spec["signers"]], spec["threshold"],
                  Path(state_dir), spec["finality_blocks"])
    try:
        progress = await world.settler.settle(order, signatures, poll_s=0.2, timeout_s=120)
        print(json.dumps({"stage": progress.stage.value, "reason": progress.reason}), flush=True)
    finally:
        await world.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
