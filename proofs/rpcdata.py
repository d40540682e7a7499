"""Decoding the 0x-hex quantities and data of JSON-RPC answers."""

from __future__ import annotations

from proofs.errors import MalformedInput


def data(value: object, what: str) -> bytes:
    """JSON-RPC DATA (``0x``-prefixed, even-length hex) to bytes."""
    if not isinstance(value, str) or not value.startswith("0x"):
        raise MalformedInput(what, f"expected 0x-prefixed hex, got {value!r}")
    try:
        return bytes.fromhex(value[2:])
    except ValueError as e:
        raise MalformedInput(what, f"bad hex {value!r}") from e


def quantity(value: object, what: str) -> int:
    """JSON-RPC QUANTITY (``0x``-prefixed hex integer) to int."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str) or not value.startswith("0x") or len(value) < 3:
        raise MalformedInput(what, f"expected a 0x-prefixed quantity, got {value!r}")
    try:
        return int(value, 16)
    except ValueError as e:
        raise MalformedInput(what, f"bad quantity {value!r}") from e
