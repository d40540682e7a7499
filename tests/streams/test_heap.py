"""What survives a batch is frozen out of collections; cycles are still reclaimed on the
full-collection period."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from streams.heap import LongLivedHeap


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture(autouse=True)
def restore_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    gc.collect()


def test_a_batch_survivor_is_frozen_and_a_frozen_cycle_waits_for_the_full_collection() -> None:
    now = [0.0]
    heap = LongLivedHeap(full_every_s=60.0, clock=lambda: now[0])
    heap.start()
    frozen_before = gc.get_freeze_count()
    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle, alive during the batch
    dead = weakref.ref(a)
    now[0] = 10.0
    assert heap.settle() == 0
    assert gc.get_freeze_count() > frozen_before
    del a, b  # garbage now, but only a collection can reclaim a cycle
    gc.collect()
    assert dead() is not None  # frozen: no collection looks at it
    now[0] = 59.0
    heap.settle()
    assert dead() is not None
    now[0] = 70.0
    assert heap.settle() >= 2  # the period is over: everything collected once
    assert dead() is None
    now[0] = 80.0
    heap.settle()  # and the period starts again from the full collection
    assert heap.last_full == 70.0
