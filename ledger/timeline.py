"""Where a mission's time went: its stages as spans, from the same fold as the decider.

Pure. Each event is folded with `evolve`; a span ends where the state's stage changes, so
the timeline can never disagree with the status the ledger itself holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ledger.events import RecordedEvent
from ledger.state import MissionState, evolve


@dataclass(frozen=True)
class StageSpan:
    """A stage from the event that entered it to the one that left it (None: still in it)."""

    stage: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    first_sequence: int

    def seconds(self, now: datetime) -> float:
        return ((self.ended_at or now) - self.started_at).total_seconds()


def fold_timeline(
    mission_id: str, events: list[RecordedEvent]
) -> tuple[MissionState, list[StageSpan]]:
    """The mission's state after `events` and the stages it went through, in order (a
    terminal stage ends where it began), in one fold: folding copies the applied command
    ids an event, the dearest part of reading a long mission's trail."""
    state = MissionState(mission_id=mission_id)
    spans: list[StageSpan] = []
    for event in events:
        before = (state.stage, state.status)
        state = evolve(state, event)
        if (state.stage, state.status) == before:
            continue
        at = event.meta.occurred_at
        if spans:
            spans[-1] = _ended(spans[-1], at)
        ended = at if state.terminal else None
        spans.append(StageSpan(state.stage, state.status, at, ended, event.meta.sequence))
    return state, spans


def _ended(span: StageSpan, at: datetime) -> StageSpan:
    return StageSpan(span.stage, span.status, span.started_at, at, span.first_sequence)
