"""Liquidating on a chain's venues: the narrow edge the keeper works through
(``VenueWriter``), and its web3 adapter (``VenueChain``).

A venue's kind comes from the chain's configuration (``venues``, ``lending_pools``,
``option_venues``); each kind names its liquidation in its own units: a perp and an
option in 18-decimal contracts, a lending balance in its asset token's units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from web3 import AsyncWeb3

from relayer.chain.rpc import RpcPool
from relayer.contracts import compiled
from relayer.delivery.sending import ChainTransactions, TransactionWriter
from relayer.errors import ConfigError
from wire.commitment import market_bytes
from wire.records import LiquidationLeg

CONTRACT = {"perp": "PerpVenue", "lending": "LendingPool", "option": "OptionVenue"}


@dataclass(frozen=True)
class LiquidateCall:
    """``liquidate(...)`` on one venue, its arguments in the venue's own units."""

    venue: str
    args: tuple[Any, ...]


class VenueWriter(TransactionWriter, Protocol):
    async def flag(self, trader: str) -> tuple[int, bool]:
        """(the oracle's latest sequence for ``trader``, whether it flags the trader now)."""
        ...

    async def held(self, trader: str, leg: LiquidationLeg) -> int:
        """The venue's position now in the leg's market or series (signed, 18 decimals;
        0 for none)."""
        ...

    async def liquidation(self, trader: str, leg: LiquidationLeg) -> LiquidateCall: ...

    async def simulate(self, call: LiquidateCall, sender: str) -> str | None:
        """The revert reason of ``call`` sent now by ``sender``, or ``None`` if it passes."""
        ...


class VenueChain(ChainTransactions):
    """``VenueWriter`` over a chain's providers."""

    def __init__(self, pool: RpcPool) -> None:
        super().__init__(pool)
        chain = pool.settings
        self.kinds = ({v: "perp" for v in chain.venues}
                      | {v: "lending" for v in chain.lending_pools}
                      | {v: "option" for v in chain.option_venues})
        self.oracle = AsyncWeb3.to_checksum_address(chain.oracle)

    def _kind(self, venue: str) -> str:
        kind = self.kinds.get(venue)
        if kind is None:
            raise ConfigError(f"chains.{self.name}", f"venue {venue} is not configured")
        return kind

    def _venue(self, w3: AsyncWeb3, venue: str) -> Any:
        return w3.eth.contract(address=AsyncWeb3.to_checksum_address(venue),
                               abi=compiled(CONTRACT[self._kind(venue)]).abi)

    async def flag(self, trader: str) -> tuple[int, bool]:
        who = AsyncWeb3.to_checksum_address(trader)

        async def read(w3: AsyncWeb3) -> tuple[int, bool]:
            oracle = w3.eth.contract(address=self.oracle, abi=compiled("MarginOracle").abi)
            latest = await oracle.functions.latest(who).call()
            return int(latest[1]), bool(await oracle.functions.is_liquidatable(who).call())
        return await self.pool.on_provider("is_liquidatable", read)

    async def held(self, trader: str, leg: LiquidationLeg) -> int:
        who = AsyncWeb3.to_checksum_address(trader)
        rows = await self.pool.on_provider("positions", lambda w3: self._venue(
            w3, leg.venue).functions.positions(who).call())
        name = market_bytes(leg.market)
        for row in rows:
            if row[0] != name:
                continue
            if leg.kind in ("call", "put") and (
                    row[3] != leg.strike_wad or row[4] != leg.expiry
                    or bool(row[5]) != (leg.kind == "call")):
                continue
            return int(row[1])
        return 0

    async def liquidation(self, trader: str, leg: LiquidationLeg) -> LiquidateCall:
        who = AsyncWeb3.to_checksum_address(trader)
        kind = self._kind(leg.venue)
        name = market_bytes(leg.market)
        size = leg.to_close_wad
        if kind == "lending":
            market = await self.pool.on_provider("markets", lambda w3: self._venue(
                w3, leg.venue).functions.markets(name).call())
            size //= int(market[1])  # the asset token's units, rounded down
            return LiquidateCall(leg.venue, (who, name, size))
        if kind == "option":
            return LiquidateCall(leg.venue, (
                who, name, leg.strike_wad, leg.expiry, leg.kind == "call", size))
        return LiquidateCall(leg.venue, (who, name, size))

    async def simulate(self, call: LiquidateCall, sender: str) -> str | None:
        return await self.revert_reason("liquidate (simulated)", lambda w3: self._venue(
            w3, call.venue).functions.liquidate(*call.args), sender)

    async def trial_trade(self, trader: str, venue: str, args: tuple[Any, ...]) -> str | None:
        """The revert reason of ``trade(*args)`` sent by ``trader`` to ``venue`` now (a
        call at the pending block: the venue's own checks), or ``None`` if it would pass."""
        return await self.revert_reason("trade (simulated)", lambda w3: self._venue(
            w3, venue).functions.trade(*args), AsyncWeb3.to_checksum_address(trader))

    async def build(self, call: LiquidateCall, sender: str) -> dict[str, Any]:
        return await self.build_call("liquidate (build)", lambda w3: self._venue(
            w3, call.venue).functions.liquidate(*call.args), sender)
