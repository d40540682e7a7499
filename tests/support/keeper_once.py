"""One keeper handling one liquidation plan, as a process of its own, so that a test
can SIGKILL it mid-liquidation and start it again over the same state directory.

    python -m tests.support.keeper_once <chain settings json> <plan json> <state dir>
        <bootstrap>
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from bus.publisher import Publisher
from relayer.chain.rpc import RpcPool
from relayer.delivery.keeper import Keeper, LegStore
from relayer.delivery.retries import InFlightStore, RetryStore
from relayer.delivery.signing import load_keystore
from relayer.delivery.venues import VenueChain
from relayer.settings import ChainSettings
from relayer.statedir import StateDir
from wire.records import Liquidation


async def main(settings_path: str, plan_path: str, state_dir: str, bootstrap: str) -> None:
    chain = ChainSettings.model_validate_json(Path(settings_path).read_text())
    plan = Liquidation.model_validate_json(Path(plan_path).read_text())
    assert chain.keeper is not None
    state = StateDir(Path(state_dir))
    pool = RpcPool(chain)
    publisher = Publisher(bootstrap)
    await publisher.start()
    try:
        keeper = Keeper(VenueChain(pool), load_keystore(chain.keeper, "keeper"), publisher, 3,
                        RetryStore(state.keeper_retries(chain.chain_id)),
                        InFlightStore(state.keeper_in_flight(chain.chain_id)),
                        LegStore(state.keeper_legs(chain.chain_id)))
        await keeper.handle(plan)
    finally:
        await publisher.stop()
        await pool.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
