"""What the node reads of a chain's price feeds before it starts: their decimals."""

from __future__ import annotations

from web3 import AsyncWeb3

from relayer.chain.rpc import RpcPool
from relayer.contracts import compiled


async def feed_decimals(pool: RpcPool) -> dict[str, int]:
    """Address (lower case) → decimals of each configured price and volatility feed
    (``PriceFeed.decimals()``: both are feeds of that shape)."""
    abi = compiled("PriceFeed").abi
    decimals = {}
    feeds = [*(("price", a, f) for a, f in pool.settings.price_feeds.items()),
             *(("vol", a, f) for a, f in pool.settings.vol_feeds.items())]
    for kind, asset, address in feeds:
        checksummed = AsyncWeb3.to_checksum_address(address)
        decimals[address.lower()] = int(await pool.on_provider(
            f"{asset} {kind} feed decimals()",
            lambda w3, at=checksummed: w3.eth.contract(  # type: ignore[misc]
                address=at, abi=abi).functions.decimals().call()))
    return decimals
