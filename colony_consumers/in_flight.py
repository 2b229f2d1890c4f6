"""Which events' reactions are still running, per partition, and so how far the colony may
record that it has consumed. Pure.

Reactions run independently (a mission never waits for another's slow model call), so
they finish out of order; the stored offset of a partition is the lowest offset whose
reaction is unfinished, or one past the last event fetched. A restart re-runs from there:
nothing unfinished is skipped, and what re-runs sends the same derived command ids.
"""

from __future__ import annotations

from collections import defaultdict


class InFlight:
    def __init__(self) -> None:
        self._running: dict[int, set[int]] = defaultdict(set)
        self._fetched: dict[int, int] = {}

    def fetched(self, partition: int, offset: int) -> None:
        self._fetched[partition] = offset + 1

    def started(self, partition: int, offset: int) -> None:
        self._running[partition].add(offset)

    def finished(self, partition: int, offset: int) -> None:
        self._running[partition].discard(offset)

    def resume_at(self) -> dict[int, int]:
        """partition -> the offset a restart must begin at."""
        return {
            partition: min(self._running[partition], default=fetched)
            for partition, fetched in self._fetched.items()
        }

    def forget(self, partitions: set[int]) -> None:
        for partition in partitions:
            self._running.pop(partition, None)
            self._fetched.pop(partition, None)

    @property
    def count(self) -> int:
        return sum(len(offsets) for offsets in self._running.values())
