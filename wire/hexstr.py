"""0x-hex, the form JSON-RPC and every record here give bytes (hashes, addresses, RLP).

``to_hex(b"\\x12\\xab") == "0x12ab"``; ``from_hex("0x12ab") == b"\\x12\\xab"``. Lower case
out; either case, with or without the prefix, in.
"""

from __future__ import annotations


def to_hex(data: bytes) -> str:
    """``data`` as 0x-prefixed lower-case hex."""
    return "0x" + data.hex()


def from_hex(text: str) -> bytes:
    """The bytes of a 0x-hex string (the prefix is optional); ``ValueError`` on odd
    length or a non-hex digit."""
    return bytes.fromhex(text[2:] if text[:2] in ("0x", "0X") else text)


def word_hex(value: int) -> str:
    """``value`` as one 32-byte big-endian word in 0x-hex (a storage slot or value)."""
    return to_hex(value.to_bytes(32, "big"))
