"""The ``xmargin`` command line."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import typer

from relayer import logs
from relayer.config import NodeSettings, load_settings
from relayer.errors import ConfigError, ToolMissing

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
node_app = typer.Typer(no_args_is_help=True, help="Run a relayer node.")
app.add_typer(node_app, name="node")

ConfigOption = Annotated[Path | None, typer.Option("--config", help="node TOML file")]


def settings_or_exit(config: Path | None) -> NodeSettings:
    try:
        return load_settings(config)
    except ConfigError as e:
        typer.echo(f"config error: {e.field}: {e.message}", err=True)
        raise typer.Exit(2) from e


@node_app.command("run")
def node_run(config: ConfigOption = None,
             worker: Annotated[bool, typer.Option(help="also run a Faust worker")] = True) -> None:
    """Run listeners, the proof service and submitters (and a Faust worker)."""
    from relayer.node import run_node

    settings = settings_or_exit(config)
    logs.configure()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_node(settings, config, stop, with_worker=worker)

    try:
        asyncio.run(main())
    except ConfigError as e:
        typer.echo(f"config error: {e.field}: {e.message}", err=True)
        raise typer.Exit(2) from e


@app.command()
def worker(config: ConfigOption = None) -> None:
    """Run one Faust stream-processing worker."""
    from streams.admin import ensure_topics
    from streams.app import run_worker

    settings = settings_or_exit(config)
    asyncio.run(ensure_topics(settings.kafka.bootstrap, settings.streams.partitions))
    run_worker(settings.stream_settings(), settings.kafka.bootstrap)


@app.command()
def demo(out: Annotated[Path | None, typer.Option(help="run directory")] = None) -> None:
    """Broker, two chains, a node and a hedged trader: the netted attestation on both chains."""
    from relayer.demo import run_demo

    try:
        run_demo(out)
    except ToolMissing as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    except KeyboardInterrupt:
        typer.echo("interrupted: every started process was stopped", err=True)
        raise typer.Exit(130) from None


def main() -> None:
    app()


if __name__ == "__main__":
    main()
