"""A fetched run of one partition's records, handed to an agent as one Faust event.

Faust's per-record path (conductor, stream queue, acknowledgement) cost more than the
work done for a record. The transport (``streams.transport.driver``) therefore packs what one
fetch returned for a partition of an agent's topic into a single message at the offset
of its last record. Acknowledging that message commits every record of the bundle, so
delivery stays at-least-once: a worker killed mid-bundle re-reads all of it, and the
reducers' dedupe makes that harmless.

Wire form, all big-endian: ``MAGIC``, the number of records (I), then per record its
offset (q), timestamp in ms (q), key length (i, -1 for none), value length (i, -1 for
none), key, value.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from streams.errors import BundleError

# Marks a bundle among a message's headers; its value is the number of records.
HEADER = "xmargin-bundle"
MAGIC = b"XMB1"
_COUNT = struct.Struct(">I")
_ENTRY = struct.Struct(">qqii")


@dataclass(frozen=True, slots=True)
class Entry:
    """One record of a bundle, as it was on its partition."""

    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None


class Bundle(bytes):
    """A bundle handed over in-process (the transport and the agents share the worker):
    its entries ride along as objects, and its bytes are only the magic and the count.
    Faust passes a raw value through untouched, so packing and parsing back the records
    would be pure cost."""

    entries: Sequence[Entry]

    @classmethod
    def of(cls, entries: Sequence[Entry]) -> Bundle:
        bundle = cls(MAGIC + _COUNT.pack(len(entries)))
        bundle.entries = entries
        return bundle


def entries_of(value: bytes) -> Sequence[Entry]:
    """The records of a bundle, handed over in-process or packed."""
    if isinstance(value, Bundle):
        return value.entries
    return unpack(value)


def pack(entries: Sequence[Entry]) -> bytes:
    parts = [MAGIC, _COUNT.pack(len(entries))]
    for e in entries:
        parts.append(_ENTRY.pack(e.offset, e.timestamp_ms,
                                 -1 if e.key is None else len(e.key),
                                 -1 if e.value is None else len(e.value)))
        parts.append(e.key or b"")
        parts.append(e.value or b"")
    return b"".join(parts)


def unpack(raw: bytes) -> list[Entry]:
    if not raw.startswith(MAGIC) or len(raw) < len(MAGIC) + _COUNT.size:
        raise BundleError("bundle: missing magic or count")
    (count,) = _COUNT.unpack_from(raw, len(MAGIC))
    view = memoryview(raw)
    entries = []
    at = len(MAGIC) + _COUNT.size
    while at < len(raw):
        if at + _ENTRY.size > len(raw):
            raise BundleError(f"bundle: truncated entry header at byte {at}")
        offset, timestamp_ms, key_len, value_len = _ENTRY.unpack_from(raw, at)
        at += _ENTRY.size
        key = value = None
        if key_len >= 0:
            key, at = bytes(view[at:at + key_len]), at + key_len
        if value_len >= 0:
            value, at = bytes(view[at:at + value_len]), at + value_len
        if at > len(raw) or key_len < -1 or value_len < -1:
            raise BundleError(f"bundle: entry at offset {offset} runs past the end")
        entries.append(Entry(offset, timestamp_ms, key, value))
    if len(entries) != count:
        raise BundleError(f"bundle: {len(entries)} records, {count} announced")
    return entries


def is_bundle(headers: Sequence[tuple[str, bytes]] | Mapping[str, bytes] | None) -> bool:
    if isinstance(headers, Mapping):
        return HEADER in headers
    return any(name == HEADER for name, _ in headers or ())
