"""Node configs for tests and benchmarks that run workers or read a state directory:
no chain is contacted, so the RPC URLs and keystores are placeholders."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def node_config(path: Path, *, bootstrap: str = "127.0.0.1:9092", app_id: str = "xmargin",
                chains: Sequence[tuple[int, str]] = ((41001, "0x" + "aa" * 20),),
                partitions: int = 4, state_dir: Path | None = None) -> Path:
    """Write a node TOML at ``path`` with one ``[[chains]]`` per (chain id, oracle)."""
    lines = [f'state_dir = "{state_dir}"'] if state_dir is not None else []
    lines += ["[kafka]", f'bootstrap = "{bootstrap}"',
              "[streams]", f'app_id = "{app_id}"', f"partitions = {partitions}"]
    for i, (chain_id, oracle) in enumerate(chains):
        lines += ["[[chains]]", f'name = "{"abcdefgh"[i]}"', f"chain_id = {chain_id}",
                  'rpc_urls = ["http://127.0.0.1:1"]', f'oracle = "{oracle}"',
                  'submitter = { keystore = "unused.json", password_file = "unused" }']
    path.write_text("\n".join(lines) + "\n")
    return path
