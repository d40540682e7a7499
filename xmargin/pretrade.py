"""The node's pre-trade margin (``POST /v1/simulate``, served by
``relayer.node.web``): its own fold of the log (every
trader's books as the worker holds them, and the worker's price view) margined with
hypothetical trades by ``streams.simulate``, and each trade tried on its venue, which
says whether it would take it now.

The fold is a read model: rebuilt from the beginning of ``venue.position_proven.v1``,
``chain.reorg.v1`` and the price topics on every start, in no consumer group. Until it
has read what the log held when it started, it answers 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from bus.consumer import tail
from engine import MarginParams
from relayer import metrics
from relayer.delivery.venues import VenueChain
from relayer.errors import RpcError
from streams.price_view import PriceView
from streams.settings import StreamSettings
from streams.simulate import (
    BookFold,
    PriceSnapshot,
    SimulateRequest,
    SimulationError,
    Trade,
    simulate,
)
from wire import topics
from wire.commitment import market_bytes

VENUE_KIND = {"perp": "perp", "call": "option", "put": "option"}


class NotReady(RuntimeError):
    """The fold has not yet read the log as far as it reached at the start."""


class Simulator:
    """``relayer.node.web.Simulation`` over the stream processor's own margining."""

    def __init__(self, streams: StreamSettings, venues: Mapping[int, VenueChain]) -> None:
        self.streams = streams
        self.params = MarginParams(version=streams.params_version)
        self.venues = venues
        self.fold = BookFold()
        self.view = PriceView(streams, live=True)
        self.books_ready = asyncio.Event()

    @property
    def ready(self) -> bool:
        return self.books_ready.is_set() and self.view.ready.is_set()

    async def run(self, bootstrap: str, stop: asyncio.Event) -> None:
        """Fold the books, reorgs and prices from the beginning until ``stop``."""
        prices = asyncio.create_task(self.view.follow(bootstrap))
        books = asyncio.create_task(tail(
            bootstrap=bootstrap, names=[topics.POSITION_PROVEN, topics.REORG], stop=stop,
            handle=lambda m: self.fold.fold(m.topic, m.value, m.offset),
            caught_up=self.books_ready))
        try:
            # Either failing fails the task (and the supervisor restarts it).
            done, _ = await asyncio.wait((prices, books), return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            for task in (prices, books):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def check(self, request: SimulateRequest) -> None:
        """Every trade names a chain of this node and one of its venues of the trade's
        kind (``SimulationError`` naming the field)."""
        for i, trade in enumerate(request.trades):
            chain = self.venues.get(trade.chain_id)
            if chain is None:
                raise SimulationError(f"trades.{i}.chain_id",
                                      f"{trade.chain_id} is not a chain of this node")
            kind = VENUE_KIND[trade.kind]
            if chain.kinds.get(trade.venue) != kind:
                raise SimulationError(f"trades.{i}.venue", f"{trade.venue} is not one of "
                                      f"chain {trade.chain_id}'s {kind} venues")

    async def handle(self, body: bytes) -> tuple[dict[str, Any], int]:
        """The answer to a request body: 200; 400 for a body that is not JSON; 422 naming
        the field of a request that does not validate or cannot be simulated; 503 while
        the fold catches up."""
        try:
            parsed = json.loads(body)
        except ValueError:
            return {"error": "the body is not JSON", "field": "body"}, 400
        try:
            request = SimulateRequest.model_validate(parsed)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            message = first["msg"].removeprefix("Value error, ")
            if ": " in message and first["type"] == "value_error":
                # A model's own check names its field first.
                field, message = message.split(": ", 1)
                where = f"{where}.{field}" if where else field
            return {"error": message, "field": where or "body"}, 422
        try:
            return await self.answer(request), 200
        except SimulationError as e:
            return {"error": e.message, "field": e.field}, 422
        except NotReady as e:
            return {"error": str(e)}, 503

    async def answer(self, request: SimulateRequest) -> dict[str, Any]:
        """The simulation of ``request``; ``SimulationError`` naming a bad field,
        ``NotReady`` while the fold catches up."""
        if not self.ready:
            raise NotReady("catching up with the log")
        started = time.perf_counter()
        self.check(request)
        snapshot = PriceSnapshot(quotes=self.view.quotes, windows=self.view.windows,
                                 vol_quotes=self.view.vol_quotes, days=self.view.days)
        answer = simulate(self.fold.state(request.trader), request.trades, snapshot,
                          self.streams, self.params)
        answer["trades"] = (await asyncio.gather(*(
            self.trial(request.trader, i, t) for i, t in enumerate(request.trades)))
            if request.check_venues else [trade_row(i, t) for i, t in enumerate(request.trades)])
        metrics.SIMULATE_SECONDS.observe(time.perf_counter() - started)
        return answer

    async def trial(self, trader: str, i: int, trade: Trade) -> dict[str, Any]:
        """Would the venue take ``trade`` alone, now? Each trade is tried on the chain as
        it is (not after the request's earlier trades)."""
        name = market_bytes(trade.market)
        args: tuple[Any, ...] = ((name, trade.size_wad) if trade.kind == "perp" else
                                 (name, trade.strike_wad, trade.expiry, trade.kind == "call",
                                  trade.size_wad))
        try:
            reason = await self.venues[trade.chain_id].trial_trade(trader, trade.venue, args)
        except RpcError as e:
            return trade_row(i, trade, None, f"no provider answered: {e.detail}")
        return trade_row(i, trade, reason is None, reason or "")


def trade_row(i: int, trade: Trade, accepted: bool | None = None,
              reason: str = "not asked") -> dict[str, Any]:
    return {"index": i, "chain_id": trade.chain_id, "venue": trade.venue,
            "accepted": accepted, "reason": reason}
