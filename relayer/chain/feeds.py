"""What the node reads of a chain's price feeds before it starts: their decimals."""

from __future__ import annotations

from web3 import AsyncWeb3

from relayer.chain.rpc import RpcPool
from relayer.contracts import compiled


async def feed_decimals(pool: RpcPool) -> dict[str, int]:
    """Asset → decimals of each configured feed (``PriceFeed.decimals()``)."""
    abi = compiled("PriceFeed").abi
    decimals = {}
    for asset, address in pool.settings.price_feeds.items():
        checksummed = AsyncWeb3.to_checksum_address(address)
        decimals[asset] = int(await pool.on_provider(
            f"{asset} feed decimals()",
            lambda w3, at=checksummed: w3.eth.contract(  # type: ignore[misc]
                address=at, abi=abi).functions.decimals().call()))
    return decimals
