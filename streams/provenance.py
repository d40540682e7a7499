"""What an audit holds an attestation's inputs against, from the log alone: the block
headers (their hashes recomputed), the oracle rounds and the reorgs.

- A block is *anchored* when a header in the log hashes (from its RLP) to the block's
  hash, and *final* when the log holds a header ``depth`` blocks below it on the same
  branch (``finality``: the chain's ``finality_blocks``).
- A price an attestation lists must be the median of oracle rounds it names, each a
  record of ``oracle.price.v1`` from an anchored, final block, observed no later than
  the attestation's data clock.
- A book an attestation names must never be in a block that a ``chain.reorg.v1`` of the
  log orphans: only final blocks are proven, and a reorg of a final block halts its
  chain instead of being published.

Each check returns the differences it found, one line each naming the record, the field
and both values; an empty list is a pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from streams.oracle import median_of
from wire.records import AttestedPrice, ChainReorg, PriceUpdate

Block = tuple[int, str]  # (chain id, block hash)


@dataclass(frozen=True)
class Anchor:
    number: int
    parent_hash: str
    state_root: str


class Headers:
    """The verified headers of the log, by (chain, hash), and which are final."""

    def __init__(self, finality: Mapping[int, int]) -> None:
        self.finality = finality
        self.anchors: dict[Block, Anchor] = {}
        self.children: dict[Block, set[str]] = {}
        self.final_blocks: set[Block] = set()

    def add(self, chain_id: int, block_hash: str, anchor: Anchor) -> None:
        self.anchors[(chain_id, block_hash)] = anchor
        self.children.setdefault((chain_id, anchor.parent_hash), set()).add(block_hash)

    def is_final(self, chain_id: int, block_hash: str) -> bool:
        """Does the log hold a descendant ``depth`` blocks below ``block_hash``?"""
        if (chain_id, block_hash) in self.final_blocks:
            return True
        depth = self.finality.get(chain_id)
        if depth is None:
            return False
        level = {block_hash}
        for _ in range(depth):
            level = {c for h in level for c in self.children.get((chain_id, h), ())}
            if not level:
                return False
        self.final_blocks.add((chain_id, block_hash))
        return True

    def check_block(self, what: str, chain_id: int, block_hash: str, number: int,
                    state_root: str | None = None) -> list[str]:
        """Is the block ``what`` names anchored, at ``number``, final (and, given, under
        ``state_root``)?"""
        anchor = self.anchors.get((chain_id, block_hash))
        if anchor is None:
            return [f"{what}: block {chain_id}:{number} {block_hash} has no header in the log"]
        if anchor.number != number:
            return [f"{what}: block number {number}, its header says {anchor.number}"]
        if state_root is not None and anchor.state_root != state_root:
            return [f"{what}: state root {state_root}, its header's is {anchor.state_root}"]
        if chain_id not in self.finality:
            return [f"{what}: chain {chain_id} is not configured (its finality is unknown)"]
        if not self.is_final(chain_id, block_hash):
            return [f"{what}: block {chain_id}:{number} is not final in the log (no header "
                    f"{self.finality[chain_id]} block(s) below it)"]
        return []


class Reorgs:
    """Block hashes the log's ``chain.reorg.v1`` records orphan, per chain."""

    def __init__(self) -> None:
        self.orphaned: dict[int, set[str]] = {}

    def add(self, reorg: ChainReorg) -> None:
        self.orphaned.setdefault(reorg.chain_id, set()).update(reorg.orphaned)

    def orphans(self, chain_id: int, block_hash: str) -> bool:
        return block_hash in self.orphaned.get(chain_id, ())


class Rounds:
    """The oracle rounds of the log, by (asset, source, round id): of prices, or (``kind``
    "implied vol", ``topic`` oracle.vol.v1) of implied volatilities."""

    def __init__(self, max_deviation: float, kind: str = "price",
                 topic: str = "oracle.price.v1") -> None:
        self.max_deviation = max_deviation
        self.kind = kind
        self.topic = topic
        self.rounds: dict[tuple[str, str, int], PriceUpdate] = {}

    def add(self, update: PriceUpdate) -> None:
        self.rounds.setdefault((update.asset, update.source, update.round_id), update)

    def check_price(self, price: AttestedPrice) -> tuple[list[str], list[PriceUpdate]]:
        """The differences between ``price`` and the rounds it names, and those rounds
        (whose blocks the caller checks once the whole log is read)."""
        what = f"{self.kind} of {price.asset}"
        if not price.rounds:
            return [f"{what}: names no oracle round"], []
        found = [self.rounds.get((price.asset, r.source, r.round_id)) for r in price.rounds]
        missing = [f"{r.source}#{r.round_id}" for r, q in zip(price.rounds, found, strict=True)
                   if q is None]
        if missing:
            return [f"{what}: rounds not in {self.topic}: {missing}"], []
        quotes = [q for q in found if q is not None]
        median, observed, spread = median_of(quotes)
        out = []
        if median != price.price_wad:
            out.append(f"{what}: price_wad {price.price_wad}, its rounds give {median}")
        if observed != price.observed_at:
            out.append(f"{what}: observed_at {price.observed_at}, its rounds give {observed}")
        if spread > self.max_deviation and not price.degraded:
            out.append(f"{what}: not degraded, its rounds are {spread:.1%} apart")
        return out, quotes
