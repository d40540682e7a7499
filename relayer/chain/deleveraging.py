"""A perp venue's open positions and recorded bad debt, read from the chain, as the
candidates of an auto-deleveraging proposal (``engine.deleveraging``).

The traders are those of the venue's ``PositionChanged`` logs; their positions, the
feed prices and the venue's ``bad_debt`` are read at one block, and each trader's
global equity is the one the chain's ``MarginOracle`` attests (0 when none is held).
"""

from __future__ import annotations

from typing import Any

from eth_typing import ChecksumAddress
from web3 import HTTPProvider, Web3
from web3.exceptions import Web3Exception

from engine.deleveraging import Candidate
from relayer.chain.events import POSITION_CHANGED_TOPIC, market_name
from relayer.contracts import compiled
from relayer.errors import RpcError


def read_perp_venue(rpc_url: str, venue: str, from_block: int = 0
                    ) -> tuple[int, int, list[Candidate]]:
    """(block read at, the venue's uncovered bad debt in 18 decimals, every open
    position as a candidate)."""
    w3 = Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
    try:
        return _read(w3, Web3.to_checksum_address(venue), from_block)
    except (OSError, ValueError, Web3Exception) as e:
        raise RpcError(rpc_url, "read venue", f"{type(e).__name__}: {e}") from e


def _read(w3: Web3, address: ChecksumAddress, from_block: int) -> tuple[int, int, list[Candidate]]:
    block = w3.eth.block_number
    venue = w3.eth.contract(address=address, abi=compiled("PerpVenue").abi)
    oracle = w3.eth.contract(address=venue.functions.oracle().call(block_identifier=block),
                             abi=compiled("MarginOracle").abi)
    logs = w3.eth.get_logs({"address": address, "fromBlock": from_block, "toBlock": block,
                            "topics": [POSITION_CHANGED_TOPIC]})
    traders = sorted({"0x" + bytes(log["topics"][1])[-20:].hex() for log in logs})
    prices: dict[bytes, int] = {}

    def price_wad(market: bytes) -> int:
        if market not in prices:
            feed: Any = w3.eth.contract(
                address=venue.functions.feeds(market).call(block_identifier=block),
                abi=compiled("PriceFeed").abi)
            answer = int(feed.functions.latestRoundData().call(block_identifier=block)[1])
            prices[market] = answer * 10 ** (18 - int(feed.functions.decimals().call()))
        return prices[market]

    candidates = []
    for trader in traders:
        who = Web3.to_checksum_address(trader)
        rows = venue.functions.positions(who).call(block_identifier=block)
        if not rows:
            continue
        equity = int(oracle.functions.latest(who).call(block_identifier=block)[2])
        candidates += [Candidate(trader, market_name(m), int(size), int(entry), price_wad(m),
                                 equity) for m, size, entry in rows]
    unit_wad = int(venue.functions.unit_wad().call(block_identifier=block))
    bad_debt = int(venue.functions.bad_debt().call(block_identifier=block)) * unit_wad
    return block, bad_debt, candidates
