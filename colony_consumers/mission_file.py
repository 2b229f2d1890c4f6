"""What the colony knows about a mission: folded from its events (and the commands it
already sent, which a restart forgets). Pure.

Rebuilt from the events topic after a restart, so reactors never depend on memory that
a crash would lose.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ledger.commands import StoredArtifact
from ledger.events import (
    ArtifactRecorded,
    ArtifactsRecorded,
    EventMeta,
    MissionRequested,
    RecordedEvent,
    ReviewerPacketRecorded,
    TaskFailed,
    TaskSucceeded,
    TaskTimedOut,
    ToolRequestDenied,
    WritebackApproved,
    WritebackProposed,
    recorded_artifacts,
)
from ledger.state import MissionState, evolve


@dataclass
class MissionFile:
    mission_id: str
    state: MissionState
    request: MissionRequested | None = None
    sources: list[StoredArtifact] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    denials: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    writebacks: dict[str, WritebackProposed] = field(default_factory=dict)
    asked_at: dict[str, datetime] = field(default_factory=dict)
    approved: dict[str, EventMeta] = field(default_factory=dict)
    requested_at: datetime | None = None
    last: EventMeta | None = None
    sent: set[str] = field(default_factory=set)
    """Not folded: the ids of the commands this process already had acknowledged for the
    mission, so a step prompted again (colony_consumers/reactions.py) is not sent again.
    Empty after a restart, when sending again is safe: the ledger applies an id once."""

    @classmethod
    def new(cls, mission_id: str) -> MissionFile:
        return cls(mission_id=mission_id, state=MissionState(mission_id=mission_id))

    def record(self, event: RecordedEvent) -> None:
        """Fold one event in (in sequence order)."""
        self.state = evolve(self.state, event)
        self.last = event.meta
        body = event.body
        if isinstance(body, MissionRequested):
            self.request = body
            self.requested_at = event.meta.occurred_at
        elif isinstance(body, ArtifactRecorded | ArtifactsRecorded):
            self.sources += [a for a in recorded_artifacts(body) if a.kind == "source"]
            self.sources.sort(key=source_order)
        elif isinstance(body, TaskSucceeded):
            self.outputs[body.task_id] = body.summary
        elif isinstance(body, ToolRequestDenied):
            self.denials.append(f"{body.tool}: {body.rule_id}")
        elif isinstance(body, TaskFailed | TaskTimedOut):
            self.failures.append(f"{body.task_id}: {getattr(body, 'error', 'timed out')}")
        elif isinstance(body, WritebackProposed):
            self.writebacks[body.writeback_id] = body
            self.asked_at[body.writeback_id] = event.meta.occurred_at
        elif isinstance(body, ReviewerPacketRecorded):
            self.outputs["review"] = body.output
        elif isinstance(body, WritebackApproved):
            self.approved[body.writeback_id] = event.meta

    def deadline(self, default_ms: int) -> datetime | None:
        """When the mission's time budget runs out (`default_ms` after its request if it
        states none); None before its request is known."""
        if self.requested_at is None:
            return None
        budget = self.request.time_budget_ms if self.request else default_ms
        return self.requested_at + timedelta(milliseconds=budget)


def source_order(source: StoredArtifact) -> tuple[str, int, str]:
    """Sources in task then document order (`<task_id>-<n>`), however their records
    interleaved: the draft numbers its citations by this order, the reviewer checks them by
    it, and the same mission run twice must number them the same."""
    task, _, number = source.artifact_id.rpartition("-")
    if number.isdigit():
        return task, int(number), ""
    return source.artifact_id, -1, source.content_hash
