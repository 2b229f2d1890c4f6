"""Where a restarted colony begins folding a partition: at the first event of the oldest
mission still open at the stored offset, not at the partition's beginning. Pure.

The colony stores, with each partition's resume offset, this mark (same transaction). A
mission open at the resume offset is one the colony holds, or one that ended at or after
that offset (its end is re-read, its reactions may re-run), so both count. Everything
before the mark belongs to missions that had ended: a restart skips it, and reads a
million-event log in the time the open missions take. A mission open for days (waiting
for an operator) holds the mark back to its start; a restart then reads from there, as
it would have read from the beginning.
"""

from __future__ import annotations

from collections import defaultdict


class FoldMarks:
    def __init__(self) -> None:
        self._open: dict[int, dict[str, int]] = defaultdict(dict)
        """partition -> mission -> offset of its first event."""
        self._ended: dict[int, list[tuple[int, int]]] = defaultdict(list)
        """partition -> (offset of the ending, offset of the first event), since the
        stored offset last moved past them."""

    def opened(self, partition: int, mission_id: str, offset: int) -> None:
        self._open[partition].setdefault(mission_id, offset)

    def ended(self, partition: int, mission_id: str, offset: int) -> None:
        first = self._open[partition].pop(mission_id, None)
        if first is not None:
            self._ended[partition].append((offset, first))

    def fold_from(self, partition: int, resume_at: int) -> int:
        """The mark to store with `resume_at`; missions ended before it are forgotten."""
        ended = [(end, first) for end, first in self._ended[partition] if end >= resume_at]
        self._ended[partition] = ended
        return min([resume_at, *self._open[partition].values(), *(first for _, first in ended)])

    def forget(self, partitions: set[int]) -> None:
        for partition in partitions:
            self._open.pop(partition, None)
            self._ended.pop(partition, None)
