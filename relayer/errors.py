"""Errors of the relayer.

Tree::

    RelayerError
    ├── ConfigError         a bad setting; ``field`` names it (the node exits non-zero)
    ├── RpcError            every provider of a chain failed a call (retryable)
    └── ToolMissing         a local binary (anvil, tansu) is not installed
"""

from __future__ import annotations


class RelayerError(Exception):
    retryable = False


class ConfigError(RelayerError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class RpcError(RelayerError):
    retryable = True

    def __init__(self, chain: str, method: str, detail: str) -> None:
        super().__init__(f"{chain}: {method} failed: {detail}")
        self.chain = chain
        self.method = method
        self.detail = detail


class ToolMissing(RelayerError):
    def __init__(self, tool: str, hint: str) -> None:
        super().__init__(f"{tool} not found: {hint}")
        self.tool = tool
