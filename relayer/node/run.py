"""The node: checks its configuration against the world, then runs and supervises the
listeners, the proof service, the submitters, the keepers, a watch on each sending
account's balance, the trader board its status API reads, and (optionally) a worker
process; and serves its metrics, status API and status page over HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial

from aiokafka import ConsumerRecord
from eth_account.signers.local import LocalAccount

from bus import epoch
from bus import metrics as bus_metrics
from bus.admin import ensure_topics
from bus.consumer import consume, tail
from bus.publisher import Publisher
from relayer.chain.feeds import feed_decimals
from relayer.chain.listener import Listener
from relayer.chain.rpc import RpcPool
from relayer.delivery.gathering import SignatureBook
from relayer.delivery.keeper import Keeper, LegStore
from relayer.delivery.oracle import OracleChain
from relayer.delivery.retries import InFlightStore, RetryStore
from relayer.delivery.sending import TransactionSender
from relayer.delivery.signing import load_keystore
from relayer.delivery.submitter import Submitter
from relayer.delivery.venues import VenueChain
from relayer.errors import ConfigError, LogHalted, RpcError
from relayer.node import board
from relayer.node.supervise import supervise, watch_process
from relayer.node.web import NodeWeb, Simulation
from relayer.proving.service import ProofService
from relayer.settings import RelayerSettings
from relayer.settlement.service import SettlementService, SettlementStore
from relayer.settlement.settler import Settler
from relayer.settlement.vaults import VaultChain
from relayer.settlement.vouches import VouchBook
from relayer.settlement.watcher import Watcher
from relayer.statedir import StateDir
from wire import topics
from wire.records import (
    Attestation,
    Liquidation,
    PositionEvent,
    RecordError,
    SettlementOrder,
    Verdict,
    decode,
)

log = logging.getLogger(__name__)

Task = Callable[[], Awaitable[None]]


async def connect_chains(settings: RelayerSettings) -> dict[int, RpcPool]:
    """A client per chain, after checking a provider answers with the configured chain id."""
    clients = {c.chain_id: RpcPool(c) for c in settings.chains}
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


@dataclass(frozen=True)
class Keys:
    """The node's sending accounts: no signer key (each signer is an attester)."""

    submitters: dict[int, LocalAccount]
    keepers: dict[int, LocalAccount]  # chains with a keeper, when the node runs one
    settlers: dict[int, LocalAccount]  # chains with a clearing vault and a settler account
    guardians: dict[int, LocalAccount]  # ... and a guardian account for the watcher


def load_keys(settings: RelayerSettings) -> Keys:
    senders = {c.chain_id: load_keystore(c.submitter, f"chains.{i}.submitter")
               for i, c in enumerate(settings.chains)}
    keepers = {c.chain_id: load_keystore(c.keeper, f"chains.{i}.keeper")
               for i, c in enumerate(settings.chains)
               if c.keeper is not None and settings.keeper_enabled}
    settlers = {c.chain_id: load_keystore(c.settler, f"chains.{i}.settler")
                for i, c in enumerate(settings.chains)
                if c.settler is not None and c.clearing_vault is not None}
    guardians = {c.chain_id: load_keystore(c.guardian, f"chains.{i}.guardian")
                 for i, c in enumerate(settings.chains)
                 if c.guardian is not None and c.chain_id in settlers}
    return Keys(senders, keepers, settlers, guardians)


async def chain_tasks(settings: RelayerSettings, clients: dict[int, RpcPool], keys: Keys,
                      publisher: Publisher, halted: dict[int, str], book: SignatureBook,
                      stop: asyncio.Event) -> dict[str, Task]:
    """A listener and a submitter per chain, and a keeper where it has an account."""
    state = StateDir(settings.state_dir)
    tasks: dict[str, Task] = {}
    for chain_id, client in clients.items():
        listener = Listener(client, publisher, state, await feed_decimals(client))
        submitter = Submitter(OracleChain(client), keys.submitters[chain_id], book, publisher,
                              settings.submit_max_attempts,
                              RetryStore(state.deliveries(chain_id)),
                              InFlightStore(state.in_flight(chain_id)), halted=halted,
                              signature_wait_s=settings.signature_wait_s)
        tasks[f"listener-{chain_id}"] = partial(listener.run, stop)
        tasks[f"balance-submitter-{chain_id}"] = partial(submitter.sending.watch_balance, stop)
        tasks[f"submitter-{chain_id}"] = partial(
            consume, bootstrap=settings.kafka.bootstrap, topic=topics.ATTESTATION,
            group=f"xmargin-submitter-{chain_id}", model=Attestation, publisher=publisher,
            handle=submitter.handle, stop=stop)
        if chain_id in keys.keepers:
            keeper = Keeper(VenueChain(client), keys.keepers[chain_id], publisher,
                            settings.submit_max_attempts,
                            RetryStore(state.keeper_retries(chain_id)),
                            InFlightStore(state.keeper_in_flight(chain_id)),
                            LegStore(state.keeper_legs(chain_id)), halted=halted)
            tasks[f"balance-keeper-{chain_id}"] = partial(keeper.sending.watch_balance, stop)
            tasks[f"keeper-{chain_id}"] = partial(
                consume, bootstrap=settings.kafka.bootstrap, topic=topics.LIQUIDATION,
                group=f"xmargin-keeper-{chain_id}", model=Liquidation, publisher=publisher,
                handle=keeper.handle, stop=stop)
    tasks |= settlement_tasks(settings, clients, keys, publisher, book, halted, stop)
    return tasks


def settlement_tasks(settings: RelayerSettings, clients: dict[int, RpcPool], keys: Keys,
                     publisher: Publisher, book: SignatureBook, halted: dict[int, str],
                     stop: asyncio.Event) -> dict[str, Task]:
    """The settlement service, when at least two chains settle (a clearing vault and a
    settler account each): orders from ``risk.settlement.v1``, the attesters' header
    vouches from ``risk.header_vouch.v1``."""
    chains = [c for c in settings.chains if c.chain_id in keys.settlers]
    if len(chains) < 2:
        return {}
    state = StateDir(settings.state_dir)
    vaults = {c.chain_id: VaultChain(clients[c.chain_id]) for c in chains}
    senders = {cid: TransactionSender(vault, keys.settlers[cid],
                                      InFlightStore(state.settler_in_flight(cid)), "settler")
               for cid, vault in vaults.items()}
    oracles = {c.chain_id: c.oracle for c in chains}
    signer_sets = {c.chain_id: OracleChain(clients[c.chain_id]).signer_set for c in chains}
    vouches = VouchBook(oracles, signer_sets, settings.signature_wait_s)
    service = SettlementService(Settler(vaults, senders, vouches), book, oracles, signer_sets,
                                SettlementStore(state.settlements()),
                                settings.signature_wait_s, halted=halted)
    tasks: dict[str, Task] = {
        "header-vouches": partial(tail, bootstrap=settings.kafka.bootstrap,
                                  names=[topics.HEADER_VOUCH], stop=stop,
                                  handle=vouches.on_message),
        "settler": partial(consume, bootstrap=settings.kafka.bootstrap,
                           topic=topics.SETTLEMENT, group="xmargin-settler",
                           model=SettlementOrder, publisher=publisher,
                           handle=service.handle, stop=stop),
    }
    for cid, sender in senders.items():
        tasks[f"balance-settler-{cid}"] = partial(sender.watch_balance, stop)
    guardians = {cid: TransactionSender(vaults[cid], account,
                                        InFlightStore(state.guardian_in_flight(cid)), "guardian")
                 for cid, account in keys.guardians.items()}
    tasks["settlement-watch"] = partial(Watcher(
        vaults, guardians, findings=state.settlement_violations()).run, stop)
    return tasks


def gather_verdict(book: SignatureBook, message: ConsumerRecord) -> None:
    try:
        if not book.add(decode(Verdict, message.value)):
            log.warning("verdict refused: a signature does not recover to its attester",
                        extra={"offset": message.offset})
    except RecordError as e:
        # Not the node's to dead-letter: the book is rebuilt from the log on every start.
        log.warning("verdict refused", extra={"offset": message.offset, "reason": e.reason})


def log_incident(state: StateDir, vanished: epoch.LogVanished) -> str:
    return str(epoch.record(vanished, state.root, "node"))


async def hold_log(settings: RelayerSettings, state: StateDir) -> epoch.EpochFile:
    """The log's epoch at the start: the node's own, or the log's first (written when it
    has none). Raises ``LogHalted`` when the log lost the epoch the node built on."""
    file = epoch.EpochFile(state.log_epoch())
    bus_metrics.LOG_VANISHED.set(0)
    try:
        await epoch.hold(settings.kafka.bootstrap, file, create=True)
    except epoch.LogVanished as e:
        raise LogHalted(str(e), log_incident(state, e)) from e
    return file


async def run_node(settings: RelayerSettings, partitions: int, stop: asyncio.Event,
                   worker_command: Sequence[str] | None = None,
                   simulation: Callable[[dict[int, VenueChain]], Simulation] | None = None
                   ) -> None:
    """Run until ``stop``: the proof service, a listener and a submitter per chain, and
    ``worker_command`` (a stream worker) as a supervised process when given; and the
    pre-trade ``simulation`` its HTTP server serves, made from the chains' venues. Topics are
    created with ``partitions`` first. A log that no longer holds the node's epoch
    (``bus.epoch``) stops it at the start (``LogHalted``) or, found while running, stops
    every task but the HTTP server (its metric and status stay up) until ``stop``."""
    keys = load_keys(settings)  # a bad keystore fails the start, before any connection
    clients = await connect_chains(settings)
    bootstrap = settings.kafka.bootstrap
    await ensure_topics(bootstrap, partitions)
    state = StateDir(settings.state_dir)
    try:
        epoch_file = await hold_log(settings, state)
    except LogHalted:
        await asyncio.gather(*(c.close() for c in clients.values()))
        raise
    # The tasks stop with the node, or alone when the log vanishes under them.
    work = asyncio.Event()
    vanished: list[str] = []

    async def halt(e: epoch.LogVanished) -> None:
        vanished.append(log_incident(state, e))
        work.set()

    async def forward() -> None:
        await stop.wait()
        work.set()

    publisher = Publisher(bootstrap)
    await publisher.start()
    prover = ProofService(dict(clients), publisher)
    # Chains whose listener halted (chain id → why): their submitters stop delivering.
    halted: dict[int, str] = {}
    tasks: dict[str, Task] = {
        "prover": partial(consume, bootstrap=bootstrap, topic=topics.POSITION_EVENT,
                          group="xmargin-prover", model=PositionEvent, publisher=publisher,
                          handle=prover.handle, stop=work, concurrent=True),
        "log-epoch": partial(epoch.watch, bootstrap, epoch_file, True, halt, work),
    }
    book = SignatureBook()
    tasks["signatures"] = partial(tail, bootstrap=bootstrap, names=[topics.SIGNATURE],
                                  stop=work, handle=partial(gather_verdict, book))
    tasks |= await chain_tasks(settings, clients, keys, publisher, halted, book, work)
    traders = board.TraderBoard()
    tasks["board"] = partial(
        tail, bootstrap=bootstrap, names=board.TOPICS, stop=work,
        handle=lambda m: board.fold(traders, m.topic, m.value, m.timestamp))
    if worker_command is not None:
        # Stopped with the node only: over a vanished log the worker halts by itself,
        # with its own incident and metric.
        tasks["worker"] = partial(watch_process, worker_command, stop)
    simulator = None
    if simulation is not None and settings.metrics_port:
        simulator = simulation({i: VenueChain(c) for i, c in clients.items()})
        tasks["simulator"] = partial(simulator.run, bootstrap, work)
    web = NodeWeb(settings, traders, halted, list(tasks), simulator)
    forwarding = asyncio.create_task(forward())
    try:
        port = await web.start() if settings.metrics_port else None
        log.info("node started", extra={"chains": sorted(clients), "pid": os.getpid(),
                                        "http": f"http://127.0.0.1:{port}/" if port else None})
        await asyncio.gather(*(supervise(n, t, stop if n == "worker" else work, halted)
                               for n, t in tasks.items()))
        if vanished:
            log.critical("every task stopped over a vanished log; the HTTP server stays up "
                         "until the node is stopped", extra={"evidence": vanished[0]})
            await stop.wait()
    finally:
        forwarding.cancel()
        await web.stop()
        await publisher.stop()
        await asyncio.gather(*(c.close() for c in clients.values()))
