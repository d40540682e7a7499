"""``POST /v1/simulate`` latency, as ``bench_engine`` reports it: the node's HTTP app
(``relayer.node.web.NodeWeb`` with ``xmargin.pretrade.Simulator``) on loopback, asked
10,000 times in a row by a second process over one keep-alive connection, against
``GET /healthz`` on the same server in the same run (the HTTP round trip alone).

The simulator holds one trader of 10 positions on two chains (perps, a dated future's
stand-in perp, options) and is asked for two hypothetical trades (a perp and a call),
with ``check_venues`` off: a venue's trial is one ``eth_call`` to its chain, whose
latency is the provider's, not the node's.

Run alone: ``.venv/bin/python -m benchmarks.simulate_latency``.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import subprocess
import sys
import threading
import time
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
from aiohttp import web

from relayer.node.board import TraderBoard
from relayer.node.web import NodeWeb
from relayer.settings import RelayerSettings
from streams.settings import AttestationTarget, StreamSettings
from streams.state import TraderState, apply_proven
from wire.records import BookHead, Position, PriceUpdate
from xmargin.pretrade import Simulator

WAD = 10**18
T0 = 1_760_000_000
TRADER = "0x" + "cd" * 20
PERPS = {41001: "0x" + "11" * 20, 41002: "0x" + "21" * 20}
OPTIONS = {41001: "0x" + "12" * 20, 41002: "0x" + "22" * 20}
SPOT = {"BTC": 60_000, "ETH": 3_000, "SOL": 150}
REQUESTS = 10_000


def book(chain_id: int, venue: str, positions: tuple[Position, ...]) -> BookHead:
    block_hash = "0x" + f"{chain_id:064x}"
    return BookHead(event_id=f"{chain_id}:{block_hash}:0", chain_id=chain_id, venue=venue,
                    trader=TRADER, block_number=100, block_hash=block_hash,
                    block_timestamp=T0, collateral_wad=25_000 * WAD, positions=positions)


def trader_state() -> TraderState:
    expiry = T0 + 30 * 86_400

    def option(market: str, kind: str, size: float, strike: float) -> Position:
        return Position(market=market, kind=kind, size_wad=int(size * WAD),
                        entry_price_wad=100 * WAD, strike_wad=int(strike * WAD), expiry=expiry)

    def perp(market: str, size: float) -> Position:
        return Position(market=market, size_wad=int(size * WAD),
                        entry_price_wad=SPOT[market] * WAD)

    state = TraderState(trader=TRADER)
    for b in (
        book(41001, PERPS[41001], (perp("BTC", 0.5), perp("ETH", -4), perp("SOL", 30))),
        book(41002, PERPS[41002], (perp("BTC", -0.3), perp("ETH", 6))),
        book(41001, OPTIONS[41001], (option("ETH", "call", -5, 3300),
                                     option("ETH", "put", 5, 2700))),
        book(41002, OPTIONS[41002], (option("BTC", "call", 1, 65_000),
                                     option("BTC", "put", -1, 55_000),
                                     option("SOL", "call", -20, 170))),
    ):
        state = apply_proven(state, b)
    return state


def simulator() -> Simulator:
    streams = StreamSettings(targets=tuple(
        AttestationTarget(chain_id=c, oracle="0x" + f"{c:040x}") for c in PERPS))
    # Only the venues' kinds are read with check_venues off.
    venues = {c: cast(Any, SimpleNamespace(kinds={PERPS[c]: "perp", OPTIONS[c]: "option"}))
              for c in PERPS}
    sim = Simulator(streams, venues)
    sim.fold.states[TRADER] = trader_state()
    for i, (asset, usd) in enumerate(SPOT.items()):
        for source in ("feed-a", "feed-b"):
            sim.view.apply(PriceUpdate(asset=asset, price_wad=usd * WAD, source=source,
                                       round_id=1, observed_at=T0, chain_id=41001,
                                       block_number=1 + i, block_hash="0x" + "33" * 32))
    sim.books_ready.set()
    sim.view.ready.set()
    return sim


REQUEST = {"trader": TRADER, "check_venues": False, "trades": [
    {"chain_id": 41001, "venue": PERPS[41001], "market": "ETH", "size_wad": 2 * WAD},
    {"chain_id": 41002, "venue": OPTIONS[41002], "market": "BTC", "kind": "call",
     "size_wad": -WAD, "strike_wad": 70_000 * WAD, "expiry": T0 + 30 * 86_400,
     "premium_wad": 900 * WAD}]}


def serve(sim: Simulator) -> tuple[int, asyncio.AbstractEventLoop, web.AppRunner]:
    """The node's HTTP app on a free loopback port, in a thread of its own."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def start() -> None:
        # The routes served here read no setting (only the status routes do).
        settings = RelayerSettings.model_construct(chains=[], metrics_port=0)
        runner = web.AppRunner(NodeWeb(settings, TraderBoard(), {}, [], sim).app(),
                               access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        holder["runner"], holder["port"] = runner, runner.addresses[0][1]
        ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(start())
        except Exception as e:
            holder["error"] = e
            ready.set()
            return
        loop.run_forever()

    threading.Thread(target=run, daemon=True).start()
    ready.wait(30)
    if "error" in holder:
        raise holder["error"]
    return int(holder["port"]), loop, holder["runner"]


def client(port: int, n: int) -> dict[str, list[float]]:
    """Latencies in ms of ``n`` simulations and ``n`` health checks, after a warm-up."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    body = json.dumps(REQUEST).encode()
    headers = {"Content-Type": "application/json"}

    def simulate() -> None:
        conn.request("POST", "/v1/simulate", body, headers)
        response = conn.getresponse()
        answer = response.read()
        assert response.status == 200, answer

    def health() -> None:
        conn.request("GET", "/healthz")
        conn.getresponse().read()

    out: dict[str, list[float]] = {}
    for name, call in (("simulate", simulate), ("healthz", health)):
        for _ in range(200):
            call()
        times = []
        for _ in range(n):
            start = time.perf_counter()
            call()
            times.append((time.perf_counter() - start) * 1e3)
        out[name] = times
    return out


def measure(n: int = REQUESTS) -> dict[str, Any]:
    """p50 / p99 of both routes, asked from a second process."""
    sim = simulator()
    port, loop, runner = serve(sim)
    try:
        done = subprocess.run([sys.executable, "-m", "benchmarks.simulate_latency",
                               "--client", str(port), str(n)],
                              capture_output=True, text=True, check=True, timeout=600)
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
    times = json.loads(done.stdout)

    def pct(name: str, q: float) -> float:
        return round(float(np.percentile(times[name], q)), 3)

    return {"requests": n, "p50_ms": pct("simulate", 50), "p99_ms": pct("simulate", 99),
            "healthz_p50_ms": pct("healthz", 50), "healthz_p99_ms": pct("healthz", 99),
            "p99_ratio_to_healthz": round(pct("simulate", 99) / pct("healthz", 99), 2)}


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--client":
        print(json.dumps(client(int(sys.argv[2]), int(sys.argv[3]))))
    else:
        print(json.dumps(measure()))
