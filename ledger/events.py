"""Events: immutable facts about a mission, in past tense, in the mission's total order.

Field docs live in the .avsc files (schemas_avro/), the wire format's source of truth;
tests/unit/test_schemas.py keeps these models and those files in step.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from ledger.commands import MissionMode, MissionType, PlannedTask, StoredArtifact, Verdict

GENESIS_HASH = "0" * 64


class EventMeta(BaseModel):
    """Envelope of a recorded event (schemas_avro/velocity.EventMeta.avsc)."""

    model_config = ConfigDict(frozen=True)

    event_id: str
    mission_id: str
    sequence: int = Field(ge=1)
    event_type: str
    occurred_at: datetime
    causation_id: str
    correlation_id: str
    trace_id: str
    actor: str
    prev_hash: str
    hash: str


class EventBody(BaseModel):
    """Base of every event's own fields; the class name is the event type.

    `added_fields` lists fields added after the type first shipped (each with a default).
    They are left out of `data()` while they hold their default, so an event recorded
    before they existed hashes the same today: evolving a schema never breaks a chain.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    added_fields: ClassVar[frozenset[str]] = frozenset()

    def data(self) -> dict[str, Any]:
        """The event's fields as the hash chain and the archive's `data` column hold them."""
        data = self.model_dump(mode="json")
        for name in self.added_fields:
            default = type(self).model_fields[name].get_default(call_default_factory=True)
            if data[name] == default:
                del data[name]
        return data


class MissionRequested(EventBody):
    mission_type: MissionType
    mode: MissionMode
    objective: str
    environment: str
    time_budget_ms: int
    token_budget: int
    project_id: str | None = None
    lead_company: str | None = None
    lead_contact: str | None = None
    replay_of: str | None = None


class MissionQueued(EventBody):
    position: int
    limit: int


class PlanningStarted(EventBody):
    planner: str


class MissionPlanned(EventBody):
    tasks: list[PlannedTask]
    rationale: str


class TaskStarted(EventBody):
    task_id: str
    worker: str
    attempt: int


class TaskSucceeded(EventBody):
    added_fields = frozenset({"notes"})

    task_id: str
    summary: str
    artifact_hashes: list[str]
    tokens_used: int
    duration_ms: int
    notes: list[str] = []


class TaskFailed(EventBody):
    task_id: str
    error: str
    retryable: bool
    attempt: int


class TaskRetried(EventBody):
    task_id: str
    attempt: int


class TaskTimedOut(EventBody):
    task_id: str
    timeout_ms: int
    attempt: int


class ToolRequestAllowed(EventBody):
    task_id: str
    tool: str
    rule_id: str
    reason: str


class ToolRequestDenied(EventBody):
    task_id: str
    tool: str
    rule_id: str
    reason: str


class McpCallRecorded(EventBody):
    tool: str
    arguments_hash: str
    outcome: str


class ArtifactRecorded(EventBody):
    artifact_id: str
    kind: str
    content_hash: str
    source: str
    size_bytes: int


class ArtifactsRecorded(EventBody):
    artifacts: list[StoredArtifact]


def recorded_artifacts(body: ArtifactRecorded | ArtifactsRecorded) -> list[StoredArtifact]:
    """The artifacts an event records: ArtifactRecorded (one each) is what roots wrote
    before RecordArtifacts; logs keep it, so every reader takes both."""
    if isinstance(body, ArtifactsRecorded):
        return body.artifacts
    return [StoredArtifact(**body.model_dump())]


class BudgetUsed(EventBody):
    tokens: int
    time_ms: int
    tokens_total: int
    time_total_ms: int


class BudgetExceeded(EventBody):
    budget: str
    limit: int
    used: int


class ReviewStarted(EventBody):
    reviewer: str


class ReviewerPacketRecorded(EventBody):
    packet_hash: str
    verdict: Verdict
    output: str
    checks: list[str]


class WritebackProposed(EventBody):
    writeback_id: str
    target: str
    record_ref: str
    changes: dict[str, str]
    rationale: str


class ApprovalRequested(EventBody):
    writeback_id: str
    summary: str


class WritebackApproved(EventBody):
    writeback_id: str
    decided_by: str
    reason: str


class WritebackRejected(EventBody):
    writeback_id: str
    decided_by: str
    reason: str


class WritebackExecuted(EventBody):
    writeback_id: str
    detail: str


class WritebackFailed(EventBody):
    writeback_id: str
    detail: str


class MissionCompleted(EventBody):
    output: str
    verdict: str


class MissionFailed(EventBody):
    reason: str
    stage: str


class MissionCancelled(EventBody):
    reason: str
    stage: str


class MissionTimedOut(EventBody):
    stage: str
    timeout_ms: int
    stuck_since: datetime


class MissionReplayRequested(EventBody):
    new_mission_id: str
    reason: str


class CommandRejected(EventBody):
    """A command was refused; `reason` is machine-readable, `detail` is for people."""

    command_id: str
    command_type: str
    reason: str
    detail: str


class RecordedEvent(BaseModel):
    """An event as stored on `mission.events` and in the archive."""

    model_config = ConfigDict(frozen=True)

    meta: EventMeta
    body: EventBody

    @property
    def event_type(self) -> str:
        return self.meta.event_type


class GateRunStarted(EventBody):
    run_id: str
    version: str
    environment: str
    root_url: str


class GateCheckRecorded(EventBody):
    gate: int
    check: str
    passed: bool
    evidence: str
    duration_ms: int


class GateRunCompleted(EventBody):
    passed: bool
    checks: int
    failed: int


class RolloutAdvanced(EventBody):
    environment: str
    from_step: int
    to_step: int
    reason: str
    evidence_hash: str | None = None
    evidence_run_id: str | None = None


class RolloutRolledBack(EventBody):
    environment: str
    from_step: int
    to_step: int
    reason: str


EVENT_TYPES: dict[str, type[EventBody]] = {
    cls.__name__: cls
    for cls in (
        MissionRequested,
        MissionQueued,
        PlanningStarted,
        MissionPlanned,
        TaskStarted,
        TaskSucceeded,
        TaskFailed,
        TaskRetried,
        TaskTimedOut,
        ToolRequestAllowed,
        ToolRequestDenied,
        McpCallRecorded,
        ArtifactRecorded,
        ArtifactsRecorded,
        BudgetUsed,
        BudgetExceeded,
        ReviewStarted,
        ReviewerPacketRecorded,
        WritebackProposed,
        ApprovalRequested,
        WritebackApproved,
        WritebackRejected,
        WritebackExecuted,
        WritebackFailed,
        MissionCompleted,
        MissionFailed,
        MissionCancelled,
        MissionTimedOut,
        MissionReplayRequested,
        CommandRejected,
        GateRunStarted,
        GateCheckRecorded,
        GateRunCompleted,
        RolloutAdvanced,
        RolloutRolledBack,
    )
}
