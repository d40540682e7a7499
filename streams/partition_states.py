"""The trader states of a worker's partitions, decoded, beside the table.

Nobody else writes a partition while it is assigned here, so a state read or written
since the last rebalance is the table's; a rebalance forgets them all (a partition may
have moved). A partition's table is read once after it is assigned (``read``); from
then on these states are the whole partition, as every write goes through ``keep``,
and a trader not here is a new one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bus.partitioner import partition_of
from streams.state import TraderState


class PartitionStates:
    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.states: dict[str, TraderState] = {}
        self.members: dict[int, set[str]] = {}
        self.complete: set[int] = set()  # partitions whose whole table has been read

    def keep(self, state: TraderState, partition: int) -> None:
        self.states[state.trader] = state
        self.members.setdefault(partition, set()).add(state.trader)

    def of_partition(self, partition: int) -> list[TraderState]:
        return [self.states[t] for t in self.members.get(partition, ())]

    def read(self, partitions: set[int], table: Iterable[tuple[bytes, bytes]]) -> None:
        """Hold every state of ``partitions`` not read since the last rebalance, from
        ``table`` (key, the state's JSON)."""
        unread = partitions - self.complete
        if not unread:
            return
        for key, raw in table:
            partition = partition_of(key, self.partitions)
            if partition in unread and key.decode() not in self.states:
                self.keep(TraderState.model_validate_json(raw), partition)
        self.complete |= unread

    def forget(self, sender: Any = None, /, *args: Any, **kwargs: Any) -> None:
        """Forget everything (connected to Faust's rebalance signals)."""
        self.states.clear()
        self.members.clear()
        self.complete.clear()
