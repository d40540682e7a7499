"""A JSON-RPC provider that lies: it forwards to a real chain (anvil) and doctors what an
attester would read through it. Run as a process in front of one chain:

    python -m tests.support.lying_rpc --upstream URL --port P --price-factor 1.05

``--price-factor``: every ``AnswerUpdated`` log it returns (``eth_getLogs``) carries the
feed's answer times this factor, as a poisoned provider would report a price round.
Everything else passes through unchanged, so the lie is self-consistent where it can be:
the blocks and their hashes are the chain's own.
"""

from __future__ import annotations

import argparse
from typing import Any

import aiohttp
from aiohttp import web

from relayer.chain.events import ANSWER_UPDATED_TOPIC


def doctor(method: str, result: Any, factor: float) -> Any:
    if method != "eth_getLogs" or not isinstance(result, list):
        return result
    out = []
    for entry in result:
        topics = list(entry.get("topics", []))
        if topics and topics[0] == ANSWER_UPDATED_TOPIC:
            answer = int(topics[1], 16)  # int256 indexed: the prices here are positive
            topics[1] = "0x" + round(answer * factor).to_bytes(32, "big").hex()
            entry = {**entry, "topics": topics}
        out.append(entry)
    return out


def app(upstream: str, factor: float) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        async with aiohttp.ClientSession() as session, session.post(upstream, json=body) as r:
            answer = await r.json()
        if isinstance(body, dict) and "result" in answer:
            answer["result"] = doctor(body.get("method", ""), answer["result"], factor)
        return web.json_response(answer)

    application = web.Application()
    application.router.add_post("/", handle)
    return application


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--price-factor", type=float, default=1.0)
    args = parser.parse_args()
    web.run_app(app(args.upstream, args.price_factor), host="127.0.0.1", port=args.port,
                print=None)


if __name__ == "__main__":
    main()
