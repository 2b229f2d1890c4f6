"""Admission: at most MAX_CONCURRENT_MISSIONS missions worked at once per colony process;
the rest wait, visibly (stage `queued`), and start oldest first as slots free. Pure."""

from __future__ import annotations

from collections.abc import Iterable

from colony_consumers.mission_file import MissionFile

WORKING = frozenset({"planning", "running", "in_review"})


def is_waiting(file: MissionFile) -> bool:
    return file.state.status == "requested" and file.state.stage == "queued"


def working_count(files: Iterable[MissionFile], starting: set[str]) -> int:
    """Missions taking a slot: working, about to start, or requested and not queued."""
    return sum(
        1
        for f in files
        if f.state.status in WORKING
        or f.mission_id in starting
        or (f.state.status == "requested" and not is_waiting(f))
    )


def next_waiting(files: Iterable[MissionFile], starting: set[str], slots: int) -> list[MissionFile]:
    """The oldest `slots` waiting missions not already being started."""
    waiting = [f for f in files if is_waiting(f) and f.mission_id not in starting and f.last]
    waiting.sort(key=lambda f: f.state.status_since or f.last.occurred_at)  # type: ignore[union-attr]
    return waiting[: max(slots, 0)]
