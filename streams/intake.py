"""What an agent reads: its stream in batches of (where, record), each bundle's records
sharing its event, the invalid ones dead-lettered with their own offset and reason."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import NamedTuple, cast

import faust

from bus import metrics
from streams.errors import BundleError
from streams.transport import bundles
from wire.records import R, RecordError, decode

# (event, key, value, offset, reason, kind): dead-letter one record of ``event``'s
# partition; ``kind`` is the metrics label (``bus.metrics.DEAD_LETTER_KINDS``).
Refuse = Callable[[faust.EventT, bytes | None, bytes | None, int, str, str], Awaitable[None]]


class At(NamedTuple):
    """Where a record was read: the Faust event it came in (a bundle's, shared by its
    records) and its own offset on that event's partition."""

    event: faust.EventT
    offset: int

    @property
    def partition(self) -> int:
        return int(self.event.message.partition)


Batch = list[tuple[At, R]]


def entries_of(event: faust.EventT) -> Sequence[bundles.Entry]:
    """The records an event stands for: a bundle's, or the event's own."""
    message = event.message
    if not bundles.is_bundle(message.headers):
        return [bundles.Entry(message.offset, 0, message.key, message.value)]
    return bundles.entries_of(message.value or b"")


async def decoded(event: faust.EventT, model: type[R], refuse: Refuse) -> Batch[R]:
    """The valid records of ``event`` as ``model``; the rest refused."""
    message = event.message
    try:
        entries = entries_of(event)
    except BundleError as e:
        await refuse(event, message.key, message.value, message.offset, str(e), "bundle")
        return []
    metrics.RECORDS_CONSUMED.labels(topic=message.topic).inc(len(entries))
    out: Batch[R] = []
    for entry in entries:
        try:
            out.append((At(event, entry.offset), decode(model, entry.value)))
        except RecordError as e:
            await refuse(event, entry.key, entry.value, entry.offset, e.reason, e.kind)
    return out


async def batches(stream: faust.StreamT, model: type[R], max_records: int, within_s: float,
                  refuse: Refuse) -> AsyncIterator[Batch[R]]:
    """Up to ``max_records`` events at a time (or what arrived within ``within_s``), as
    one batch of their valid records."""
    # take_events is on faust.Stream, not on the StreamT protocol.
    take = cast(faust.Stream[bytes], stream).take_events
    async for events in take(max_records, within=within_s):
        batch: Batch[R] = []
        for event in events:
            batch += await decoded(event, model, refuse)
        yield batch
