"""What the node reads of a chain's price feeds before it starts: their decimals."""

from __future__ import annotations

from web3 import AsyncWeb3
from web3.exceptions import Web3Exception

from relayer.chain.rpc import RpcPool
from relayer.contracts import compiled
from relayer.errors import RpcError


async def feed_decimals(pool: RpcPool) -> dict[str, int]:
    """Asset → decimals of each configured feed (``PriceFeed.decimals()``)."""
    abi = compiled("PriceFeed").abi
    decimals = {}
    for asset, address in pool.settings.price_feeds.items():
        feed = pool.w3.eth.contract(address=AsyncWeb3.to_checksum_address(address), abi=abi)
        try:
            decimals[asset] = int(await feed.functions.decimals().call())
        except (Web3Exception, OSError, TimeoutError) as e:
            raise RpcError(pool.name, f"{asset} feed decimals()", f"{type(e).__name__}: {e}"
                           ) from e
    return decimals
