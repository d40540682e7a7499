"""A listener's durable place in its chain: the next block to publish at the head, the
recent blocks' hashes (a reorg is walked back within them) and the next final block.
A restart neither skips nor repeats a block."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from relayer.statedir import write_atomically


@dataclass(frozen=True)
class Checkpoint:
    next_block: int                         # next block to publish at the head
    recent: tuple[tuple[int, str], ...]     # (number, hash) published, oldest first
    next_final: int                         # next final block whose rounds to publish

    @property
    def last_hash(self) -> str | None:
        return self.recent[-1][1] if self.recent else None

    @staticmethod
    def load(path: Path, start_block: int) -> Checkpoint:
        if not path.exists():
            return Checkpoint(start_block, (), start_block)
        data = json.loads(path.read_text())
        recent = tuple((int(n), str(h)) for n, h in data.get("recent", ()))
        if not recent and data.get("last_hash"):  # a checkpoint of the finalized-only listener
            recent = ((int(data["next_block"]) - 1, str(data["last_hash"])),)
        return Checkpoint(int(data["next_block"]), recent,
                          int(data.get("next_final", data["next_block"])))

    def save(self, path: Path) -> None:
        write_atomically(path, json.dumps({"next_block": self.next_block,
                                           "recent": self.recent,
                                           "next_final": self.next_final}))
