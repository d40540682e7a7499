"""Errors of the stream processor.

Tree::

    StreamsError
    ├── BundleError          bytes that claim to be a bundle do not parse as one
    │                        (the bundle is dead-lettered; the worker goes on)
    └── WriteOutsideEvent    a table write with no current event to name its partition

A record that does not decode is ``wire.records.RecordError`` (the wire's root), which
the intake turns into a dead letter; normal outcomes (nothing moved, a price not known
yet) are results, not errors.
"""

from __future__ import annotations


class StreamsError(Exception):
    pass


class BundleError(StreamsError, ValueError):
    """Bytes that claim to be a bundle but do not parse as one."""


class WriteOutsideEvent(StreamsError, TypeError):
    def __init__(self, table: str) -> None:
        super().__init__(f"table {table}: written outside of an event")
        self.table = table
