"""When the cyclic garbage collector runs in a worker or an audit.

A worker holds tens of thousands of trader states and an audit hundreds of thousands of
books, and each record adds a few dozen tracked objects that live on. CPython's
collector scans a young object once per generation it passes through, so with its
default policy much of a worker's time would go to scanning states that are never
garbage.

So what survives a batch is frozen (``gc.freeze``: never scanned again, still freed by
reference counting when it dies), and young collections are rare. Only garbage in
reference cycles needs the collector; what was frozen while alive and joined a cycle
later would never be reclaimed, so every ``full_every_s`` everything is unfrozen and
collected once.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

# Allocations between two young collections: a batch's temporaries die by reference
# counting before this many accumulate, and what lives on is frozen after the batch.
YOUNG_THRESHOLD = 1_000_000


class LongLivedHeap:
    def __init__(self, full_every_s: float = 3600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.full_every_s = full_every_s
        self.clock = clock
        self.last_full = clock()

    def start(self) -> None:
        """Freeze what exists now (modules, the app, a loaded log); collect rarely."""
        gc.freeze()
        gc.set_threshold(YOUNG_THRESHOLD, 20, 10)
        self.last_full = self.clock()

    def settle(self) -> int:
        """After a batch: freeze what it left alive, or, every ``full_every_s``, collect
        everything once first. Returns the number of objects a full collection found
        unreachable (0 when it only froze)."""
        now = self.clock()
        if now - self.last_full < self.full_every_s:
            gc.freeze()
            return 0
        started = time.perf_counter()
        gc.unfreeze()
        found = gc.collect()
        gc.freeze()
        self.last_full = now
        log.info("full collection: %d unreachable objects in %.2f s", found,
                 time.perf_counter() - started)
        return found
