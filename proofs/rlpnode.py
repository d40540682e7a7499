"""Strict RLP decoding of trie nodes (Yellow Paper appendix B).

A trie node is a list whose items are byte strings or, for embedded children, lists
of the same shape. This decoder handles exactly that and rejects every non-canonical
form pyrlp rejects (a single byte below 0x80 given a prefix, a long length with a
leading zero or under 56, trailing bytes). It exists because node decoding sits on
the proof-verification hot path and pyrlp's general decoder is several times slower.
"""

from __future__ import annotations


class RLPError(ValueError):
    """The bytes are not canonical RLP of a node."""


def _length(data: bytes, pos: int, n_bytes: int, end: int) -> int:
    if pos + n_bytes > end:
        raise RLPError("length runs past the end")
    if data[pos] == 0:
        raise RLPError("long length with a leading zero")
    length = int.from_bytes(data[pos : pos + n_bytes], "big")
    if length < 56:
        raise RLPError("long form used for a length under 56")
    return length


def _item(data: bytes, pos: int, end: int) -> tuple[bytes | list, int]:
    """The item starting at ``pos`` and the position after it."""
    b = data[pos]
    if b < 0x80:
        return data[pos : pos + 1], pos + 1
    if b <= 0xB7:
        start, stop = pos + 1, pos + 1 + b - 0x80
        if stop > end:
            raise RLPError("string runs past the end")
        if b == 0x81 and data[start] < 0x80:
            raise RLPError("single byte below 0x80 given a prefix")
        return data[start:stop], stop
    if b <= 0xBF:
        n = b - 0xB7
        start = pos + 1 + n
        stop = start + _length(data, pos + 1, n, end)
        if stop > end:
            raise RLPError("string runs past the end")
        return data[start:stop], stop
    if b <= 0xF7:
        start, stop = pos + 1, pos + 1 + b - 0xC0
    else:
        n = b - 0xF7
        start = pos + 1 + n
        stop = start + _length(data, pos + 1, n, end)
    if stop > end:
        raise RLPError("list runs past the end")
    items: list[bytes | list] = []
    while start < stop:
        item, start = _item(data, start, stop)
        items.append(item)
    if start != stop:
        raise RLPError("list items overrun the list")
    return items, stop


def decode_node(data: bytes) -> list:
    """The items of the RLP list ``data`` (nested lists for embedded nodes)."""
    if not data:
        raise RLPError("empty input")
    item, stop = _item(data, 0, len(data))
    if stop != len(data):
        raise RLPError(f"{len(data) - stop} trailing byte(s)")
    if not isinstance(item, list):
        raise RLPError("a node must be an RLP list")
    return item
