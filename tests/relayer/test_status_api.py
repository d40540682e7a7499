"""The node's HTTP side on a real aiohttp server: the JSON routes, bad input, readiness,
and the status page rendered in a real headless Chromium (both chains, one halted)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from devnet.localnet import free_port
from relayer.chain.checkpoint import Checkpoint
from relayer.errors import ConfigError
from relayer.node.board import TraderBoard
from relayer.node.web import NodeWeb
from relayer.settings import ChainSettings, KeystoreSettings, RelayerSettings
from relayer.statedir import StateDir
from tests.relayer.test_board import attestation
from tests.support.browser import render
from tests.support.configs import node_config

UNUSED = KeystoreSettings(keystore=Path("unused.json"), password_file=Path("unused"))
TRADER = "0x" + "ab" * 20


def settings(tmp_path: Path) -> RelayerSettings:
    chains = [ChainSettings(name=name, chain_id=cid, rpc_urls=["http://127.0.0.1:1"],
                            oracle="0x" + "aa" * 20, submitter=UNUSED)
              for name, cid in (("chain-a", 41001), ("chain-b", 41002))]
    return RelayerSettings(chains=chains, state_dir=tmp_path,
                           metrics_port=free_port())


def with_node_state(tmp_path: Path) -> TraderBoard:
    """Both chains' listeners checkpointed; chain-b halted with its evidence; one trader
    attested below maintenance."""
    state = StateDir(tmp_path)
    Checkpoint(121, ((120, "0x" + "11" * 32),), 119).save(state.checkpoint(41001))
    Checkpoint(88, ((87, "0x" + "22" * 32),), 86).save(state.checkpoint(41002))
    state.incident(41002, 86).write_text(json.dumps({
        "chain": "chain-b", "chain_id": 41002, "block": 86, "reason": "reorg below finality",
        "published_hash": "0x" + "22" * 32, "providers": {}, "detected_at": 0}))
    board = TraderBoard()
    board.on_attestation(attestation(TRADER, 1, health=0.82))
    return board


def serve(tmp_path: Path, check: Callable[[str], Awaitable[Any]]) -> Any:
    async def run() -> Any:
        web = NodeWeb(settings(tmp_path), with_node_state(tmp_path), {}, ["listener-41001"])
        port = await web.start()
        try:
            return await check(f"http://127.0.0.1:{port}")
        finally:
            await web.stop()
    return asyncio.run(run())


def test_json_routes_and_bad_input(tmp_path: Path) -> None:
    async def check(base: str) -> dict[str, Any]:
        out = {}
        async with aiohttp.ClientSession() as http:
            for route in ("/status", "/overview", f"/traders/{TRADER}", "/traders/0x12",
                          "/healthz", "/readyz"):
                async with http.get(base + route) as r:
                    out[route] = (r.status, await r.json())
            async with http.get(base + "/metrics") as r:
                out["/metrics"] = (r.status, r.headers["Content-Type"])
        return out

    out = serve(tmp_path, check)
    status, body = out["/status"]
    assert status == 200 and set(body["chains"]) == {"chain-a", "chain-b"}
    assert body["chains"]["chain-b"]["halted"] and not body["chains"]["chain-a"]["halted"]
    assert out["/overview"][1]["riskiest"][0]["trader"] == TRADER
    status, trader = out[f"/traders/{TRADER}"]
    assert status == 200 and trader["attestation"]["sequence"] == 1
    assert trader["chains"]["41001"]["state"] == "delivering"
    assert out["/traders/0x12"][0] == 400 and out["/traders/0x12"][1]["field"] == "address"
    assert out["/healthz"] == (200, {"status": "ok"})
    # No task has run here: not ready, and the answer names it.
    status, ready = out["/readyz"]
    assert status == 503 and list(ready["not_ready"]) == ["listener-41001"]
    assert out["/metrics"][0] == 200 and out["/metrics"][1].startswith("text/plain")


def test_the_page_shows_both_chains_and_the_halted_one_in_chromium(tmp_path: Path) -> None:
    shot = tmp_path / "status-page.png"

    async def check(base: str) -> str:
        return await asyncio.to_thread(render, base + "/", shot)

    dom = serve(tmp_path, check)
    rows = {row.split("</td>")[0].split(">")[-1]: row
            for row in dom.split("<tr>") if "</td>" in row}
    assert "chain-a" in rows and "chain-b" in rows
    assert "HALTED: reorg below finality" in rows["chain-b"]
    assert ">ok<" in rows["chain-a"] and "HALTED" not in rows["chain-a"]
    assert ">120<" in rows["chain-a"] and ">118<" in rows["chain-a"]  # published, final
    assert TRADER in rows and "0.820" in rows[TRADER]
    assert "updated never" not in dom  # the script ran and filled the page
    assert shot.stat().st_size > 10_000


def test_a_port_in_use_is_a_config_error_naming_the_field(tmp_path: Path) -> None:
    async def run() -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            busy = settings(tmp_path).model_copy(
                update={"metrics_port": taken.getsockname()[1]})
            with pytest.raises(ConfigError, match=r"cannot serve on 127\.0\.0\.1") as e:
                await NodeWeb(busy, TraderBoard(), {}, []).start()
            assert e.value.field == "metrics_port"
    asyncio.run(run())


def test_a_worker_whose_metrics_port_is_in_use_exits_2_naming_it(tmp_path: Path) -> None:
    config = node_config(tmp_path / "node.toml")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        done = subprocess.run(
            [sys.executable, "-m", "xmargin.cli", "worker", "--config", str(config)],
            env={**os.environ, "XMARGIN__STREAMS__METRICS_PORT": str(taken.getsockname()[1])},
            capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "streams.metrics_port" in done.stderr
