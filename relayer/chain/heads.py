"""New heads announced over a WebSocket subscription (``newHeads``): a wake-up call for
the listener, nothing more. What the endpoint says is not trusted, only its timing;
blocks are still read and verified over the HTTP providers, and polling remains the
fallback."""

from __future__ import annotations

import asyncio
import logging

from web3 import AsyncWeb3, WebSocketProvider

from relayer import metrics

log = logging.getLogger(__name__)


async def watch_heads(ws_url: str, chain: str, wake: asyncio.Event, stop: asyncio.Event
                      ) -> None:
    """Set ``wake`` on every head ``ws_url`` announces, until ``stop``; a broken
    connection is retried with backoff (``xmargin_ws_connected`` shows which)."""
    connected = metrics.WS_CONNECTED.labels(chain=chain)
    backoff_s = 0.5
    try:
        while not stop.is_set():
            try:
                async with AsyncWeb3(WebSocketProvider(ws_url)) as w3:
                    await w3.eth.subscribe("newHeads")
                    connected.set(1)
                    backoff_s = 0.5
                    async for _ in w3.socket.process_subscriptions():
                        wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # any failure of the feed: polling carries on
                log.warning("websocket head feed failed", extra={
                    "chain": chain, "error": f"{type(e).__name__}: {e}"})
            connected.set(0)
            await asyncio.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, 30.0)
    finally:
        connected.set(0)
