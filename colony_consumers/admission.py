"""Admission: at most MAX_CONCURRENT_MISSIONS missions worked at once per colony process;
the rest wait, visibly (stage `queued`), and start oldest first as slots free. Pure.

The book is kept as missions change (one look at a mission each time an event of it is
folded), not found by scanning every open mission: with a backlog those scans made each
request and each freed slot cost time in proportion to the backlog (6 ms and 3 ms at
10,000 waiting), so a burst of requests cost the colony time in proportion to its square.
"""

from __future__ import annotations

import heapq
from datetime import datetime

from colony_consumers.mission_file import MissionFile

WORKING = frozenset({"planning", "running", "in_review"})


def is_waiting(file: MissionFile) -> bool:
    return file.state.status == "requested" and file.state.stage == "queued"


def takes_slot(file: MissionFile) -> bool:
    """Working, or requested and not queued (about to be planned)."""
    status = file.state.status
    return status in WORKING or (status == "requested" and not is_waiting(file))


class AdmissionBook:
    """Which open missions take a slot and which wait (since when), by mission id."""

    def __init__(self) -> None:
        self.working: set[str] = set()
        self.waiting: dict[str, datetime] = {}
        self._queue: list[tuple[datetime, str]] = []
        """A heap of (waiting since, mission id); entries of missions that stopped waiting
        are dropped when they come up."""

    def update(self, file: MissionFile) -> None:
        """Place the mission by its state now."""
        mission_id = file.mission_id
        if takes_slot(file):
            self.working.add(mission_id)
        else:
            self.working.discard(mission_id)
        if is_waiting(file) and file.last is not None:
            since = file.state.status_since or file.last.occurred_at
            if self.waiting.get(mission_id) != since:
                self.waiting[mission_id] = since
                heapq.heappush(self._queue, (since, mission_id))
        else:
            self.waiting.pop(mission_id, None)

    def forget(self, mission_id: str) -> None:
        """The mission ended, or its partition went to another colony."""
        self.working.discard(mission_id)
        self.waiting.pop(mission_id, None)
        if len(self._queue) > 2 * len(self.waiting) + 64:
            self._queue = [(since, m) for m, since in self.waiting.items()]
            heapq.heapify(self._queue)

    def taken(self, starting: set[str], besides: str | None = None) -> int:
        """Slots in use: working missions and those being started, `besides` left out."""
        held = len(self.working) + sum(1 for m in starting if m not in self.working)
        if besides is not None and (besides in self.working or besides in starting):
            return held - 1
        return held

    def oldest(self, count: int, starting: set[str]) -> list[str]:
        """The `count` missions waiting longest that are not already being started."""
        chosen: list[str] = []
        kept: list[tuple[datetime, str]] = []
        seen: set[str] = set()
        while self._queue and len(chosen) < count:
            entry = heapq.heappop(self._queue)
            since, mission_id = entry
            if mission_id in seen or self.waiting.get(mission_id) != since:
                # no longer waiting, waiting again since another time, or a second entry
                # (its partition revoked and assigned back while it waited): dropped
                continue
            seen.add(mission_id)
            kept.append(entry)
            if mission_id not in starting:
                chosen.append(mission_id)
        for entry in kept:
            heapq.heappush(self._queue, entry)
        return chosen
