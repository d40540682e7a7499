"""The node's supervisor reads ``retryable``: a failure that may pass is run again, one
that cannot is stopped (a restart loop on a bad setting helps nobody)."""

from __future__ import annotations

import asyncio

from relayer.errors import ConfigError, RpcError
from relayer.node.supervise import supervise


def test_the_supervisor_restarts_a_retryable_failure_and_stops_a_final_one() -> None:
    calls: list[str] = []

    async def flaky() -> None:
        calls.append("flaky")
        if len(calls) == 1:
            raise RpcError("fake", "eth_blockNumber", "down")

    async def misconfigured() -> None:
        calls.append("misconfigured")
        raise ConfigError("chains.0.oracle", "no contract there")

    async def run() -> None:
        stop = asyncio.Event()
        await supervise("flaky", flaky, stop)
        await supervise("misconfigured", misconfigured, stop)

    asyncio.run(run())
    assert calls == ["flaky", "flaky", "misconfigured"]
