"""The node's HTTP side, on ``metrics_host:metrics_port`` (aiohttp; loopback by default):

    GET /                   the live status page (it polls the two JSON routes below)
    GET /metrics            every metric, Prometheus text format
    GET /status             what ``xmargin node status --json`` says, live, with each
                            supervised task's liveness
    GET /overview           the page's data: chains, the riskiest traders by attested
                            health, recent liquidations
    GET /traders/{address}  the trader's newest attestation, its delivery per chain, and
                            why it is pending (``relayer.node.board``)
    POST /v1/simulate       pre-trade margin: the trader's book with hypothetical trades,
                            every mode's figures, per-chain credit, and whether each venue
                            would take its trade (``xmargin.pretrade``)
    GET /healthz            200 while the process serves
    GET /readyz             200 once every task runs and made progress lately, else 503
                            naming the tasks that did not

A bad request gets a 4xx whose JSON names the field.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from importlib import resources
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from relayer import metrics as relayer_metrics
from relayer.errors import ConfigError
from relayer.node.board import NodeView, TraderBoard, explain
from relayer.node.status import node_status
from relayer.settings import RelayerSettings

ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
# A task that reported no progress for this long is not ready (every task beats at
# least every few seconds: a poll, a fetch, a balance read).
STALE_S = 60.0
RISKIEST = 10


class Simulation(Protocol):
    """The pre-trade simulator the node serves (``xmargin.pretrade``: it margins with the
    stream processor's path, which the relayer does not import)."""

    async def run(self, bootstrap: str, stop: asyncio.Event) -> None:
        """Fold what it needs of the log until ``stop`` (a supervised task)."""
        ...

    async def handle(self, body: bytes) -> tuple[dict[str, Any], int]:
        """The answer to a request body and its HTTP status (a 4xx names the field)."""
        ...


class NodeWeb:
    def __init__(self, settings: RelayerSettings, board: TraderBoard,
                 halted: Mapping[int, str], tasks: list[str],
                 simulator: Simulation | None = None) -> None:
        self.settings = settings
        self.simulator = simulator
        self.board = board
        self.halted = halted
        self.tasks = tasks
        self.runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes([
            web.get("/", self.page), web.get("/metrics", self.metrics),
            web.get("/status", self.status), web.get("/overview", self.overview),
            web.get("/traders/{address}", self.trader),
            web.post("/v1/simulate", self.simulate),
            web.get("/healthz", self.healthz), web.get("/readyz", self.readyz),
        ])
        return app

    async def start(self) -> int:
        """Serve on the configured port; the port bound (a bad port is a ``ConfigError``)."""
        self.runner = web.AppRunner(self.app(), access_log=None)
        await self.runner.setup()
        host, port = self.settings.metrics_host, self.settings.metrics_port
        site = web.TCPSite(self.runner, host, port)
        try:
            await site.start()
        except OSError as e:
            await self.runner.cleanup()
            raise ConfigError("metrics_port", f"cannot serve on {host}:{port}: {e}") from e
        return int(self.runner.addresses[0][1])

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def page(self, request: web.Request) -> web.Response:
        html = resources.files("relayer.node").joinpath("page.html").read_text()
        return web.Response(text=html, content_type="text/html")

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(REGISTRY),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    def liveness(self) -> dict[str, dict[str, Any]]:
        now = time.time()
        out = {}
        for name in self.tasks:
            up = REGISTRY.get_sample_value("xmargin_task_up", {"task": name}) or 0.0
            last = REGISTRY.get_sample_value("xmargin_task_last_progress_timestamp_seconds",
                                             {"task": name})
            out[name] = {"up": up == 1.0, "last_progress_s_ago":
                         None if last is None else round(now - last, 1)}
        return out

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response({**node_status(self.settings), "tasks": self.liveness(),
                                  "halted": {str(k): v for k, v in self.halted.items()}})

    async def overview(self, request: web.Request) -> web.Response:
        status = node_status(self.settings)
        chains = []
        for name, c in status["chains"].items():
            head = REGISTRY.get_sample_value("xmargin_chain_head_block", {"chain": name})
            behind = REGISTRY.get_sample_value("xmargin_listener_blocks_behind",
                                               {"chain": name})
            chains.append({"name": name, "chain_id": c["chain_id"],
                           "head": None if head is None else int(head),
                           "published": c["published_through"], "final": c["final_through"],
                           "behind": None if behind is None else int(behind),
                           "halted": c["halted"] or c["chain_id"] in self.halted,
                           "halt_reason": self.halted.get(c["chain_id"], "") or next(
                               (i["reason"] for i in c["incidents"]), ""),
                           "in_flight": c["in_flight"], "retrying": c["deliveries"]})
        liquidations = [{"trader": d.trader, "chain_id": d.chain_id, "sequence": d.sequence,
                         "leg": d.leg, "status": d.status, "reason": d.reason,
                         "tx_hash": d.tx_hash} for d in reversed(self.board.liquidations)]
        return web.json_response({"now": int(time.time()), "chains": chains,
                                  "riskiest": self.board.riskiest(RISKIEST),
                                  "liquidations": liquidations, "tasks": self.liveness()})

    async def trader(self, request: web.Request) -> web.Response:
        address = request.match_info["address"]
        if not ADDRESS.match(address):
            return web.json_response({"error": "not a 20-byte 0x-hex address",
                                      "field": "address", "value": address}, status=400)
        chains = node_status(self.settings)["chains"].values()
        node = NodeView(final={c["chain_id"]: c["final_through"] for c in chains},
                        halted=self.halted,
                        retrying={c["chain_id"]: c["deliveries"] for c in chains},
                        in_flight={c["chain_id"]: c["in_flight"] for c in chains})
        ids = [c.chain_id for c in self.settings.chains]
        return web.json_response(explain(self.board, address, ids, node, time.time()))

    async def simulate(self, request: web.Request) -> web.Response:
        if self.simulator is None:
            answer, status = {"error": "this node runs no simulator"}, 503
        else:
            answer, status = await self.simulator.handle(await request.read())
        relayer_metrics.SIMULATIONS.labels(outcome="answered" if status == 200 else (
            "not_ready" if status == 503 else "refused")).inc()
        return web.json_response(answer, status=status)

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        live = self.liveness()
        waiting = {name: t for name, t in live.items()
                   if not t["up"] or t["last_progress_s_ago"] is None
                   or t["last_progress_s_ago"] > STALE_S}
        return web.json_response({"ready": not waiting, "not_ready": waiting},
                                 status=503 if waiting else 200)
