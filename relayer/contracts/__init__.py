"""Vyper sources of the on-chain side, compiled with the ``vyper`` package on demand."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import vyper
from vyper.compiler.input_bundle import FilesystemInputBundle

SOURCES = Path(__file__).parent


@dataclass(frozen=True)
class Compiled:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    storage_layout: dict[str, Any]

    def slot_of(self, variable: str) -> int:
        """Base storage slot of ``variable`` as the compiler laid it out."""
        return int(self.storage_layout[variable]["slot"])


# The vyper compiler keeps global settings while it compiles: one compilation at a time.
_compiling = threading.Lock()


@cache
def compiled(name: str) -> Compiled:
    """Compile ``relayer/contracts/<name>.vy`` (cached per process; thread-safe)."""
    source = (SOURCES / f"{name}.vy").read_text()
    with _compiling:
        # Venues import the shared `credit` module from this folder.
        out = vyper.compile_code(source, contract_path=SOURCES / f"{name}.vy",
                                 input_bundle=FilesystemInputBundle([SOURCES]),
                                 output_formats=["abi", "bytecode", "layout"])
    layout = out["layout"]
    return Compiled(
        name=name,
        abi=out["abi"],
        bytecode=out["bytecode"],
        storage_layout=layout.get("storage_layout", layout),
    )
