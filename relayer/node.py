"""The node: checks its configuration against the world, then runs and supervises the
listeners, the proof service, the submitters and (optionally) a Faust worker process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

from eth_account.signers.local import LocalAccount
from web3 import AsyncWeb3

from relayer.chain import ChainClient
from relayer.config import NodeSettings
from relayer.contracts import compiled
from relayer.errors import ConfigError, RpcError
from relayer.kafka import Publisher, consume
from relayer.listener import ChainHalted, Listener
from relayer.metrics import Metrics
from relayer.prover import ProofService
from relayer.retries import RetryStore
from relayer.signing import load_keystore
from relayer.submitter import Submitter
from streams import topics
from streams.admin import ensure_topics
from streams.records import Attestation, PositionEvent

log = logging.getLogger(__name__)


async def connect_chains(settings: NodeSettings) -> dict[int, ChainClient]:
    """A client per chain, after checking a provider answers with the configured chain id."""
    clients = {c.chain_id: ChainClient(c) for c in settings.chains}
    try:
        for i, chain in enumerate(settings.chains):
            try:
                reported = await clients[chain.chain_id].chain_id()
            except RpcError as e:
                raise ConfigError(f"chains.{i}.rpc_urls",
                                  f"no provider reachable: {e.detail}") from e
            if reported != chain.chain_id:
                raise ConfigError(f"chains.{i}.chain_id",
                                  f"configured {chain.chain_id} but the RPC reports {reported}")
    except ConfigError:
        await asyncio.gather(*(c.close() for c in clients.values()))
        raise
    return clients


async def feed_decimals(client: ChainClient) -> dict[str, int]:
    abi = compiled("PriceFeed").abi
    decimals = {}
    for asset, address in client.settings.price_feeds.items():
        feed = client.w3.eth.contract(address=AsyncWeb3.to_checksum_address(address), abi=abi)
        decimals[asset] = int(await feed.functions.decimals().call())
    return decimals


def load_keys(settings: NodeSettings) -> tuple[list[LocalAccount], dict[int, LocalAccount]]:
    signers = [load_keystore(s, f"signers.{i}") for i, s in enumerate(settings.signers)]
    senders = {c.chain_id: load_keystore(c.submitter, f"chains.{i}.submitter")
               for i, c in enumerate(settings.chains)}
    return signers, senders


async def supervise(name: str, task: Callable[[], Awaitable[None]], stop: asyncio.Event,
                    halted: dict[int, str] | None = None) -> None:
    """Run ``task`` until ``stop``; restart it after a failure, halt it on an incident.

    The one place that catches every exception: a task must not take the node down.
    """
    backoff_s = 0.5
    while not stop.is_set():
        try:
            await task()
            return
        except ChainHalted as e:
            log.critical("chain halted", extra={"task": name, "reason": str(e)})
            if halted is not None:
                halted[int(e.evidence["chain_id"])] = str(e)
            return
        except Exception as e:
            log.error("task failed, restarting", extra={"task": name, "error": repr(e)})
            await asyncio.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, 30.0)


def start_worker(config_path: Path | None) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "relayer.cli", "worker"]
    if config_path is not None:
        cmd += ["--config", str(config_path)]
    return subprocess.Popen(cmd)


async def watch_worker(config_path: Path | None, stop: asyncio.Event) -> None:
    worker = start_worker(config_path)
    try:
        while not stop.is_set():
            if worker.poll() is not None:
                log.error("worker exited, restarting", extra={"code": worker.returncode})
                worker = start_worker(config_path)
            await asyncio.sleep(1.0)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(worker.wait, 20)
        except subprocess.TimeoutExpired:
            worker.kill()


async def run_node(settings: NodeSettings, config_path: Path | None, stop: asyncio.Event,
                   with_worker: bool = True) -> None:
    signers, senders = load_keys(settings)
    clients = await connect_chains(settings)
    bootstrap = settings.kafka.bootstrap
    await ensure_topics(bootstrap, settings.streams.partitions)
    publisher = Publisher(bootstrap)
    await publisher.start()
    prover = ProofService(clients, publisher)
    # Chains whose listener halted (chain id → why): their submitters stop delivering.
    halted: dict[int, str] = {}
    metrics = Metrics(settings.state_dir / "metrics.prom")
    tasks: dict[str, Callable[[], Awaitable[None]]] = {
        "prover": partial(consume, bootstrap=bootstrap, topic=topics.POSITION_EVENT,
                          group="xmargin-prover", model=PositionEvent, publisher=publisher,
                          handle=prover.handle, stop=stop, concurrent=True),
    }
    for chain_id, client in clients.items():
        listener = Listener(client, publisher, settings.state_dir, await feed_decimals(client),
                            metrics)
        retries = RetryStore(settings.state_dir / f"deliveries-{chain_id}.json")
        submitter = Submitter(client, senders[chain_id], signers, settings.signer_threshold,
                              publisher, settings.submit_max_attempts, retries, halted=halted)
        tasks[f"listener-{chain_id}"] = partial(listener.run, stop)
        tasks[f"submitter-{chain_id}"] = partial(
            consume, bootstrap=bootstrap, topic=topics.ATTESTATION,
            group=f"xmargin-submitter-{chain_id}", model=Attestation, publisher=publisher,
            handle=submitter.handle, stop=stop)
    if with_worker:
        tasks["worker"] = partial(watch_worker, config_path, stop)
    log.info("node started", extra={"chains": sorted(clients), "pid": os.getpid()})
    try:
        await asyncio.gather(*(supervise(n, t, stop, halted) for n, t in tasks.items()))
    finally:
        await publisher.stop()
        await asyncio.gather(*(c.close() for c in clients.values()))
