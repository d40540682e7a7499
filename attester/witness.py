"""What an attester asks the chains itself, through providers of its own choosing.

``Quorum`` asks every provider of a chain and uses an answer only when ``quorum`` of
them gave it (after each was parsed and verified): a provider that fails or lies is
outvoted, and failing over never counts fewer than ``quorum``. ``Witness`` holds the
log's claims against those answers: a block named by a book or a price round is the
block its providers have at that height, final by ``finality_blocks`` on as many of
them; a price round is the ``AnswerUpdated`` log its providers hold in that block.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from web3 import AsyncHTTPProvider, AsyncWeb3

from attester.settings import AttesterChain
from relayer.chain.events import ANSWER_UPDATED_TOPIC, decode_answer_updated
from relayer.chain.rpc import verified_block
from wire.hexstr import to_hex
from wire.records import PriceUpdate

FEED_DECIMALS = "0x313ce567"  # decimals()


class NoQuorum(Exception):
    """Fewer than ``quorum`` providers gave one answer. ``disagreed``: they answered,
    differently (evidence of a lie or a split); otherwise too few answered at all."""

    def __init__(self, chain: str, method: str, answers: dict[str, str], disagreed: bool):
        self.answers = answers
        self.disagreed = disagreed
        kind = "providers disagree" if disagreed else "too few providers answered"
        super().__init__(f"{chain} {method}: {kind}: {answers}")


class Quorum:
    def __init__(self, chain: AttesterChain) -> None:
        self.chain = chain
        self.providers = {url: AsyncWeb3(AsyncHTTPProvider(
            url, request_kwargs={"timeout": chain.rpc_timeout_s},
            exception_retry_configuration=None)) for url in chain.rpc_urls}

    async def close(self) -> None:
        for w3 in self.providers.values():
            await w3.provider.disconnect()

    async def answers(self, method: str, params: list[Any],
                      parse: Callable[[Any], Any]) -> dict[str, Any]:
        """Each provider's parsed answer, or the ``Exception`` it gave instead."""
        async def ask(w3: AsyncWeb3) -> Any:
            response = await asyncio.wait_for(
                w3.provider.make_request(method, params),  # type: ignore[arg-type]
                timeout=self.chain.rpc_timeout_s)
            if "error" in response:
                raise ValueError(f"error body: {response['error']}")
            return parse(response.get("result"))
        got = await asyncio.gather(*(ask(w3) for w3 in self.providers.values()),
                                   return_exceptions=True)
        return dict(zip(self.providers, got, strict=True))

    async def agreed(self, method: str, params: list[Any],
                     parse: Callable[[Any], Any] = lambda r: r) -> Any:
        """The answer ``quorum`` providers gave alike, or ``NoQuorum``."""
        answers = await self.answers(method, params, parse)
        tally: dict[str, list[str]] = {}
        for url, answer in answers.items():
            if not isinstance(answer, Exception):
                tally.setdefault(canonical(answer), []).append(url)
        for _key, urls in tally.items():
            if len(urls) >= self.chain.quorum:
                return answers[urls[0]]
        shown = {url: (f"{type(a).__name__}: {a}" if isinstance(a, Exception) else canonical(a))
                 for url, a in answers.items()}
        raise NoQuorum(self.chain.name, method, shown, disagreed=len(tally) > 1)

    async def final_on_quorum(self, number: int) -> bool:
        """Is block ``number`` ``finality_blocks`` deep on at least ``quorum`` providers?"""
        heads = await self.answers("eth_blockNumber", [], lambda r: int(r, 16))
        deep = [h for h in heads.values()
                if not isinstance(h, Exception) and h >= number + self.chain.finality_blocks]
        return len(deep) >= self.chain.quorum


def canonical(answer: Any) -> str:
    return json.dumps(answer, sort_keys=True, default=str)


class Witness:
    """The attester's own view of each chain; ``block`` and ``price_round`` return the
    difference from the log's claim (``None``: none), and raise ``NoQuorum`` when the
    providers cannot settle it."""

    def __init__(self, quorums: dict[int, Quorum]) -> None:
        self.quorums = quorums
        self.blocks: dict[tuple[int, int], str] = {}  # final blocks seen: (chain, number) → hash
        self.decimals: dict[tuple[int, str], int] = {}

    async def close(self) -> None:
        await asyncio.gather(*(q.close() for q in self.quorums.values()))

    async def block(self, what: str, chain_id: int, number: int, block_hash: str) -> str | None:
        quorum = self.quorums.get(chain_id)
        if quorum is None:
            return f"{what}: chain {chain_id} is not one this attester watches"
        held = self.blocks.get((chain_id, number))
        if held is None:
            if not await quorum.final_on_quorum(number):
                raise NoQuorum(quorum.chain.name, f"block {number} final",
                               {"final": "not yet on the quorum"}, disagreed=False)
            header = await quorum.agreed("eth_getBlockByNumber", [hex(number), False],
                                         lambda r: verified_block(r).hash)
            held = self.blocks[(chain_id, number)] = to_hex(header)
        if held != block_hash:
            return (f"{what}: block {chain_id}:{number} is {block_hash} in the log, "
                    f"{held} on this attester's providers")
        return None

    async def price_round(self, what: str, q: PriceUpdate) -> str | None:
        """Is ``q`` the feed's ``AnswerUpdated`` in its block, as the providers hold it?"""
        found = await self.block(what, q.chain_id, q.block_number, q.block_hash)
        if found is not None:
            return found
        quorum = self.quorums[q.chain_id]
        feed = q.source.split(":", 1)[1]
        decimals = self.decimals.get((q.chain_id, feed))
        if decimals is None:
            decimals = await quorum.agreed("eth_call", [{"to": feed, "data": FEED_DECIMALS},
                                                        "latest"], lambda r: int(r, 16))
            self.decimals[(q.chain_id, feed)] = decimals

        def rounds(result: Any) -> list[list[int]]:
            return [list(decode_answer_updated(entry)) for entry in result
                    if entry["topics"][0] == ANSWER_UPDATED_TOPIC]
        held = await quorum.agreed("eth_getLogs", [{"blockHash": q.block_hash,
                                                    "address": [feed]}], rounds)
        for answer, round_id, updated_at in held:
            if round_id == q.round_id:
                price = answer * 10 ** (18 - decimals)
                if (price, updated_at) != (q.price_wad, q.observed_at):
                    return (f"{what}: the log says {q.price_wad} at {q.observed_at}, this "
                            f"attester's providers {price} at {updated_at}")
                return None
        return f"{what}: no round {q.round_id} of {feed} in block {q.block_hash} on this " \
               f"attester's providers"
