"""The ``xmargin`` command line."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from relayer.errors import ConfigError, LogHalted, ToolMissing
from relayer.node import log_format
from xmargin.config import NodeSettings, load_settings

if TYPE_CHECKING:
    from streams.audit_report import AuditReport

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
node_app = typer.Typer(no_args_is_help=True, help="Run a relayer node.")
app.add_typer(node_app, name="node")
attester_app = typer.Typer(no_args_is_help=True,
                           help="Run an attester: one signer key, its own providers.")
app.add_typer(attester_app, name="attester")
log_app = typer.Typer(no_args_is_help=True, help="Recover a log that vanished.")
app.add_typer(log_app, name="log")
proof_app = typer.Typer(no_args_is_help=True,
                        help="Verify EIP-1186 proofs against recomputed block hashes.")
app.add_typer(proof_app, name="proof")

ConfigOption = Annotated[Path | None, typer.Option("--config", help="node TOML file")]


def settings_or_exit(config: Path | None) -> NodeSettings:
    try:
        return load_settings(config)
    except ConfigError as e:
        typer.echo(f"config error: {e.field}: {e.message}", err=True)
        raise typer.Exit(2) from e


def worker_command(config: Path | None) -> list[str]:
    """The command of one more worker with the same configuration."""
    command = [sys.executable, "-m", "xmargin.cli", "worker"]
    return [*command, "--config", str(config)] if config is not None else command


@node_app.command("run")
def node_run(config: ConfigOption = None,
             worker: Annotated[bool, typer.Option(help="also run a Faust worker")] = True) -> None:
    """Run listeners, the proof service and submitters (and a Faust worker)."""
    from relayer.node.run import run_node
    from xmargin.pretrade import Simulator

    settings = settings_or_exit(config)
    log_format.configure()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_node(settings, settings.streams.partitions, stop,
                       worker_command=worker_command(config) if worker else None,
                       simulation=partial(Simulator, settings.stream_settings()))

    try:
        asyncio.run(main())
    except ConfigError as e:
        typer.echo(f"config error: {e.field}: {e.message}", err=True)
        raise typer.Exit(2) from e
    except LogHalted as e:
        typer.echo(f"log vanished: {e}", err=True)
        raise typer.Exit(3) from e


@attester_app.command("run")
def attester_run(config: Annotated[Path | None, typer.Option(
        "--config", help="attester TOML file")] = None) -> None:
    """Recompute every proposed attestation from the chains through this attester's own
    providers; sign what it reproduces byte for byte, refuse the rest with why."""
    from attester.run import run_attester
    from bus import metrics
    from xmargin.config import load_attester_settings

    try:
        settings = load_attester_settings(config)
    except ConfigError as e:
        typer.echo(f"config error: {e.field}: {e.message}", err=True)
        raise typer.Exit(2) from e
    log_format.configure()
    try:
        metrics.serve(settings.metrics_port, settings.metrics_host)
    except OSError as e:
        typer.echo(f"error: metrics_port: cannot serve on {settings.metrics_host}:"
                   f"{settings.metrics_port}: {e}", err=True)
        raise typer.Exit(2) from e

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_attester(settings, stop)

    try:
        asyncio.run(main())
    except ConfigError as e:
        typer.echo(f"config error: {e.field}: {e.message}", err=True)
        raise typer.Exit(2) from e
    except LogHalted as e:
        typer.echo(f"log vanished: {e}", err=True)
        raise typer.Exit(3) from e


@node_app.command("status")
def node_status(config: ConfigOption = None,
                as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
                ) -> None:
    """Per chain: heights, halts with their evidence, deliveries retried or dead-lettered,
    transactions in flight (read from the state directory)."""
    from relayer.node.status import node_status as read_status
    from relayer.node.status import status_lines

    status = read_status(settings_or_exit(config))
    if as_json:
        typer.echo(json.dumps(status, indent=2))
        return
    for line in status_lines(status):
        typer.echo(line)


@app.command()
def worker(config: ConfigOption = None) -> None:
    """Run one Faust stream-processing worker."""
    from bus import metrics
    from bus.admin import ensure_topics
    from streams.app import run_worker

    settings = settings_or_exit(config)
    streams = settings.streams
    try:
        metrics.serve(streams.metrics_port, streams.metrics_host)
    except OSError as e:
        typer.echo(f"error: streams.metrics_port: cannot serve on {streams.metrics_host}:"
                   f"{streams.metrics_port}: {e}", err=True)
        raise typer.Exit(2) from e
    asyncio.run(ensure_topics(settings.kafka.bootstrap, settings.streams.partitions))
    run_worker(settings.stream_settings(), settings.kafka.bootstrap)


@app.command()
def demo(out: Annotated[Path | None, typer.Option(help="run directory")] = None,
         broker: Annotated[str, typer.Option(help="tansu (embedded) or kafka (make kafka)")
                           ] = "tansu") -> None:
    """Broker, two chains, a node and a hedged trader: the netted attestation on both chains."""
    from devnet.demo import run_demo

    if broker not in ("tansu", "kafka"):
        typer.echo(f"error: --broker: {broker!r} is neither tansu nor kafka", err=True)
        raise typer.Exit(2)
    try:
        run_demo(out, broker="kafka" if broker == "kafka" else "tansu")
    except ToolMissing as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    except KeyboardInterrupt:
        typer.echo("interrupted: every started process was stopped", err=True)
        raise typer.Exit(130) from None


@app.command()
def deploy(
    out: Annotated[Path, typer.Option(help="where node.toml and the keystores go")],
    rpc_url: Annotated[list[str], typer.Option(help="a dev chain (anvil), repeatable")],
    kafka: Annotated[str, typer.Option(help="the broker the node.toml names")] = "127.0.0.1:9092",
    eth_price: Annotated[int, typer.Option(help="the ETH feed's first answer, USD")] = 3000,
) -> None:
    """Deploy the contracts on dev chains (funded by anvil's first accounts) and write a
    node.toml and one attester-<i>.toml per signer, with fresh keystores, into OUT."""
    from web3.exceptions import Web3Exception

    from devnet.hedge import setup_network

    try:
        network = setup_network(out, kafka, rpc_url, prices={"ETH": eth_price})
    except (OSError, Web3Exception) as e:
        typer.echo(f"error: --rpc-url: cannot deploy: {type(e).__name__}: {e}", err=True)
        raise typer.Exit(2) from e
    for d in network.deployments:
        typer.echo(f"chain {d.chain_id}: oracle {d.oracle}, credit ledger {d.ledger}, "
                   f"USDC {d.token}, perp venue {d.venue}, lending pool {d.pool}, "
                   f"option venue {d.options}")
    typer.echo(f"config written to {network.config_path}")
    for config, address in zip(network.attester_configs, network.attesters, strict=True):
        typer.echo(f"attester {address}: {config}")


@app.command()
def adl(
    rpc_url: Annotated[str, typer.Option(help="the venue's chain")],
    venue: Annotated[str, typer.Option(help="a PerpVenue address")],
    from_block: Annotated[int, typer.Option(help="first block to look for traders in")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Propose auto-deleveraging for a perp venue's uncovered bad debt: the profitable
    positions ranked by profit ratio x leverage, and how much of each would close to
    cover it. Nothing is sent."""
    from engine.deleveraging import propose
    from relayer.chain.deleveraging import read_perp_venue
    from relayer.errors import RpcError

    try:
        block, deficit, candidates = read_perp_venue(rpc_url, venue, from_block)
    except RpcError as e:
        typer.echo(f"error: --rpc-url: {e}", err=True)
        raise typer.Exit(2) from e
    proposal = propose(deficit, candidates)
    out = {"venue": venue.lower(), "block": block, "bad_debt_wad": deficit,
           "covered_wad": proposal.covered_wad, "uncovered_wad": proposal.uncovered_wad,
           "steps": [{"trader": s.trader, "market": s.market, "close_wad": s.close_wad,
                      "profit_wad": s.profit_wad, "haircut_wad": s.haircut_wad,
                      "score": float(s.score)} for s in proposal.steps]}
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    typer.echo(f"venue {out['venue']} at block {block}: bad debt ${deficit / 10**18:,.2f}, "
               f"proposal covers ${proposal.covered_wad / 10**18:,.2f}")
    for s in proposal.steps:
        typer.echo(f"  {s.trader} {s.market}: close {s.close_wad / 10**18:g} "
                   f"(profit ${s.profit_wad / 10**18:,.2f}, haircut "
                   f"${s.haircut_wad / 10**18:,.2f}, score {float(s.score):.4f})")


def _print_verified(block: dict[str, Any], answer: dict[str, Any]) -> None:
    from proofs import ProofError
    from relayer.proving.check import check

    try:
        typer.echo(json.dumps(check(block, answer), indent=2))
    except ProofError as e:
        typer.echo(f"{type(e).__name__}: {e}", err=True)
        raise typer.Exit(1) from e


@proof_app.command("check")
def proof_check(
    header: Annotated[Path, typer.Option(help="eth_getBlockByNumber JSON (bare or response)")],
    proof: Annotated[Path, typer.Option(help="eth_getProof JSON (bare or response)")],
) -> None:
    """Recompute the block hash, verify the account and storage proofs, print the values."""
    from proofs import ProofError
    from relayer.proving.check import load_json

    try:
        block, answer = load_json(header, "header"), load_json(proof, "proof")
    except ProofError as e:
        typer.echo(f"{type(e).__name__}: {e}", err=True)
        raise typer.Exit(1) from e
    _print_verified(block, answer)


@proof_app.command("fetch")
def proof_fetch(
    rpc: Annotated[str, typer.Option(help="JSON-RPC URL")],
    address: Annotated[str, typer.Option(help="account address")],
    slot: Annotated[list[str], typer.Option(help="storage slot (decimal or 0x-hex), repeatable")],
    block: Annotated[int | None, typer.Option(help="block number (default: latest)")] = None,
) -> None:
    """Fetch a block and eth_getProof from RPC and check them as `proof check` does."""
    from relayer.errors import RpcError
    from relayer.proving.check import fetch

    try:
        slots = [int(s, 0) for s in slot]
    except ValueError as e:
        typer.echo(f"bad --slot: {e}", err=True)
        raise typer.Exit(2) from e
    try:
        block_json, answer = fetch(rpc, address, slots, block)
    except RpcError as e:
        typer.echo(f"RpcError: {e}", err=True)
        raise typer.Exit(1) from e
    _print_verified(block_json, answer)


@app.command()
def margin(
    book: Annotated[Path, typer.Option(help="book JSON (format in README)")],
    params: Annotated[Path | None, typer.Option(help="margin parameters TOML")] = None,
    market: Annotated[Path | None, typer.Option(
        help="market JSON replacing the book's (as `xmargin market` writes it)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """What-if calculator: margin every trader of BOOK under the three modes."""
    import tomllib

    from engine import BookError, MarginParams, ParamsError, compute_margin
    from engine.whatif import parse_book, results

    try:
        margin_params = (MarginParams.from_mapping(tomllib.loads(params.read_text()))
                         if params else MarginParams())
        doc = json.loads(book.read_text())
        if market is not None:
            doc = {**doc, "market": json.loads(market.read_text())}
        parsed = parse_book(doc, margin_params)
    except (OSError, json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    except (BookError, ParamsError) as e:
        typer.echo(f"{type(e).__name__}: {e}", err=True)
        raise typer.Exit(2) from e
    out = results(parsed, compute_margin(parsed.book, parsed.market, parsed.params))
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    print_margin_table(out)


def print_margin_table(out: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"margin (parameters v{out['params_version']})")
    for column in ("trader", "equity", "MM", "IM", "health", "free", "isolated MM",
                   "protocol-cross MM"):
        table.add_column(column, justify="left" if column == "trader" else "right")
    for tid, r in out["traders"].items():
        health = "∞" if r["health"] is None else f"{r['health']:.2f}"
        table.add_row(tid, f"{r['equity']:,.2f}", f"{r['maintenance_margin']:,.2f}",
                      f"{r['initial_margin']:,.2f}", health, f"{r['free_collateral']:,.2f}",
                      f"{r['modes']['isolated']['maintenance_margin']:,.2f}",
                      f"{r['modes']['protocol_cross']['maintenance_margin']:,.2f}")
    Console().print(table)


@app.command()
def backtest(
    out: Annotated[Path, typer.Option(help="report directory")] = Path(".xmargin/backtest"),
    params: Annotated[Path | None, typer.Option(help="margin parameters TOML")] = None,
    prices: Annotated[Path | None, typer.Option(help="price history folder")] = None,
    start: Annotated[str, typer.Option(help="first day (ISO)")] = "2019-01-01",
    end: Annotated[str, typer.Option(help="last day (ISO)")] = "2024-12-31",
) -> None:
    """Backtest margin coverage on real price history (benchmark books, 2-day, 99%)."""
    import tomllib
    from datetime import date

    from devnet.localnet import REPO
    from engine import MarginParams
    from xmargin.backtest_report import run_report

    margin_params = (MarginParams.from_mapping(tomllib.loads(params.read_text()))
                     if params else MarginParams())
    prices_dir = prices or REPO.parent / "shared" / "data" / "prices"
    report = run_report(prices_dir, out, margin_params, date.fromisoformat(start),
                        date.fromisoformat(end))
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"2-day 99% coverage {report['from']} → {report['to']}")
    for column in ("book", "days", "breaches", "rate", "Kupiec LR", "worst 250d", "from",
                   "yellow / red windows", "light", "saving vs isolated"):
        table.add_column(column)
    for b in report["books"]:
        table.add_row(b["book"], str(b["days"]), str(b["breaches"]), f"{b['breach_rate']:.2%}",
                      f"{b['kupiec_lr']:.2f}", str(b["worst_250d_breaches"]),
                      b["worst_250d_from"],
                      f"{b['yellow_250d_windows']} / {b['red_250d_windows']}",
                      b["traffic_light"], f"{b['saving_vs_isolated']:.0%}")
    Console().print(table)
    in_params = report["pair_loss_floor_in_params"]
    floors = ", ".join(f"{k} {v:.4f} (parameters {in_params.get(k, 0):.4f})"
                       for k, v in report["pair_loss_floor"].items())
    typer.echo(f"pair loss floors (2-day 99%): {floors}")
    typer.echo(f"report written to {out / 'backtest.json'} (plots beside it)")


@log_app.command("restore")
def log_restore(
    config: ConfigOption = None,
    from_dir: Annotated[Path, typer.Option("--from", help="an export (xmargin replay --export)")]
    = Path("."),
    force: Annotated[bool, typer.Option(help="restore over a log that has records")] = False,
) -> None:
    """Put an exported log back on a broker that lost it; rewind the listeners and empty
    the worker's data directory so the node continues from it (run with the node stopped)."""
    from streams.audit_log import load
    from xmargin.log_restore import RestoreRefused, restore

    settings = settings_or_exit(config)
    try:
        records = load(from_dir)
    except (OSError, ValueError, KeyError) as e:  # JSONDecodeError is a ValueError
        typer.echo(f"error: --from {from_dir}: not an export: {type(e).__name__}: {e}",
                   err=True)
        raise typer.Exit(2) from e
    if not records:
        typer.echo(f"error: --from {from_dir}: no exported record there", err=True)
        raise typer.Exit(2)
    try:
        done = asyncio.run(restore(settings, records, force))
    except RestoreRefused as e:
        typer.echo(f"refused: {e}", err=True)
        raise typer.Exit(1) from e
    typer.echo(f"restored {sum(done.records.values())} records {done.records}; new log epoch "
               f"{done.epoch}; listeners resume at {done.checkpoints}"
               + ("; worker data directory emptied" if done.worker_dir_cleared else ""))


@app.command("market")
def market_command(
    config: ConfigOption = None,
    from_dir: Annotated[Path | None, typer.Option("--from", help="an exported log")] = None,
    out: Annotated[Path | None, typer.Option(help="write the JSON here (else print it)")] = None,
) -> None:
    """The market the node margins with now, from its price log: oracle prices, the
    adaptive scan ranges and correlations (a market block for `xmargin margin --market`)."""
    from engine import MarginParams
    from streams.audit_log import load, read_topics
    from streams.market_days import market_block
    from streams.price_view import PriceView
    from wire import topics
    from wire.records import PriceUpdate, RecordError, decode

    settings = settings_or_exit(config)
    records = (load(from_dir) if from_dir is not None
               else asyncio.run(read_topics(settings.kafka.bootstrap,
                                            [topics.PRICE, topics.VOL])))
    streams_settings = settings.stream_settings()
    view = PriceView(streams_settings)
    for r in records:
        with contextlib.suppress(RecordError):
            if r.topic == topics.PRICE:
                view.apply(decode(PriceUpdate, r.value))
            elif r.topic == topics.VOL:
                view.apply_vol(decode(PriceUpdate, r.value))
    if not view.quotes:
        typer.echo("error: the log holds no price record", err=True)
        raise typer.Exit(1)
    doc = market_block(view, MarginParams(version=streams_settings.params_version))
    text = json.dumps(doc, indent=2)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text + "\n")
        typer.echo(f"market of day {doc['day']} written to {out}")


@app.command()
def replay(
    config: ConfigOption = None,
    from_beginning: Annotated[bool, typer.Option(help="read the broker from offset 0")] = False,
    until: Annotated[str | None, typer.Option(help="ignore records after this ISO time")] = None,
    export_dir: Annotated[Path | None, typer.Option("--export", help="write the log here")] = None,
    from_dir: Annotated[Path | None, typer.Option("--from", help="replay an exported log")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    processes: Annotated[int, typer.Option(
        min=1, help="audit on this many processes, a share of the traders each "
                    "(default: one per core)")] = os.cpu_count() or 1,
) -> None:
    """Audit: recompute every attestation from the log and compare it byte for byte."""
    from datetime import datetime

    from rich.console import Console
    from rich.progress import MofNCompleteColumn, Progress

    from engine import MarginParams
    from streams.audit_log import export, load, read_topics
    from streams.replay import audit

    settings = settings_or_exit(config)
    if from_dir is None and not from_beginning:
        typer.echo("error: give --from-beginning (broker) or --from DIR (export)", err=True)
        raise typer.Exit(2)
    until_ms = int(datetime.fromisoformat(until).timestamp() * 1000) if until else None
    records = (load(from_dir) if from_dir is not None
               else asyncio.run(read_topics(settings.kafka.bootstrap, until_ms=until_ms)))
    if until_ms is not None:
        records = [r for r in records if r.timestamp_ms <= until_ms]
    if export_dir is not None:
        counts = export(records, export_dir)
        typer.echo(f"exported {sum(counts.values())} records to {export_dir}: {counts}")
        return
    streams_settings = settings.stream_settings()
    params = MarginParams(version=streams_settings.params_version)
    console = Console(stderr=True)
    quiet = as_json or not console.is_terminal
    with Progress(*Progress.get_default_columns(), MofNCompleteColumn(), console=console,
                  disable=quiet) as bar:
        task = bar.add_task(f"replaying on {processes} process(es)", total=len(records))
        report = audit(records, streams_settings, params, processes,
                       progress=lambda n: bar.update(task, completed=n),
                       finality={c.chain_id: c.finality_blocks for c in settings.chains})
        bar.update(task, completed=len(records))
    if as_json:
        typer.echo(json.dumps(audit_summary(report), indent=2))
    else:
        for line in audit_lines(report):
            typer.echo(line)
    if not report.ok:
        raise typer.Exit(1)


def audit_summary(report: AuditReport) -> dict[str, Any]:
    return {
        "records": report.records, "refused": report.refused, "headers": report.headers,
        "books": report.books, "attestations": report.attestations, "matched": report.matched,
        "ok": report.ok, "problems": report.problems,
        "repeated": sum(a.repeated for a in report.traders.values()),
        "traders": {t: {"attestations": a.attestations, "matched": a.matched,
                        "repeated": a.repeated, "differences": a.differences}
                    for t, a in report.traders.items()},
    }


def audit_lines(report: AuditReport) -> list[str]:
    lines = []
    for t, a in report.traders.items():
        mark = "ok" if not a.differences else "DIFFERS"
        again = f", {a.repeated} sequence number(s) emitted again" if a.repeated else ""
        lines.append(f"{t}: {a.matched}/{a.attestations} attestations reproduced{again} "
                     f"({mark})")
        lines += [f"    {d}" for d in a.differences]
    lines.append(f"{report.records} records, {report.books} proven books re-verified, "
                 f"{report.matched}/{report.attestations} attestation digests reproduced")
    return lines


def main() -> None:
    app()


if __name__ == "__main__":
    main()
