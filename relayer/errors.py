"""Errors of the relayer.

Tree::

    RelayerError            retryable: may the same work succeed later? label: metrics
    ├── ConfigError         a bad setting; ``field`` names it (the node exits non-zero)
    ├── RpcError            every provider of a chain failed a call (retryable)
    ├── NonceTooLow         the chain took this nonce already (retryable, with a fresh one)
    ├── ChainHalted         a chain's final history changed or its providers disagree
    ├── LogDecodeError      a watched contract's log does not decode (also a ValueError)
    └── ToolMissing         a local binary (anvil, tansu) is not installed

Foreign errors (web3, aiohttp, JSON-RPC error bodies) are translated into these where
they arise, at ``relayer.chain.rpc`` and ``relayer.delivery.oracle``; normal outcomes
(already delivered, expired, reverted in simulation) are results, not errors.
"""

from __future__ import annotations

from typing import Any


class RelayerError(Exception):
    retryable = False
    label = "error"


class ConfigError(RelayerError):
    label = "config"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class RpcError(RelayerError):
    retryable = True
    label = "rpc"

    def __init__(self, chain: str, method: str, detail: str) -> None:
        super().__init__(f"{chain}: {method} failed: {detail}")
        self.chain = chain
        self.method = method
        self.detail = detail


class NonceTooLow(RelayerError):
    """The nonce was used: by this delivery (the oracle says so next time) or another."""

    retryable = True
    label = "nonce_too_low"

    def __init__(self, chain: str, nonce: int, detail: str) -> None:
        super().__init__(f"{chain}: nonce {nonce} too low: {detail}")
        self.chain = chain
        self.nonce = nonce


class LogHalted(RelayerError):
    """The log no longer holds the epoch the node built on (``bus.epoch``): nothing runs
    over it until an operator has recovered it (README "A log that vanishes")."""

    label = "log_vanished"

    def __init__(self, message: str, incident: str) -> None:
        super().__init__(f"{message}; evidence in {incident}")
        self.incident = incident


class ChainHalted(RelayerError):
    """The chain's final history changed, or its providers disagree on it: attestation
    for it stops until an operator has looked at the evidence."""

    label = "chain_halted"

    def __init__(self, message: str, evidence: dict[str, Any]) -> None:
        super().__init__(message)
        self.evidence = evidence


class LogDecodeError(RelayerError, ValueError):
    """A log of a watched contract could not be decoded; the message says why."""

    label = "log_decode"


class ToolMissing(RelayerError):
    label = "tool_missing"

    def __init__(self, tool: str, hint: str) -> None:
        super().__init__(f"{tool} not found: {hint}")
        self.tool = tool
