"""What the root accepts and shows: separate Create and Public models per resource."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

from fastapi import Path
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from gateway.problems import UNION_TAGS
from ledger.commands import ID_PATTERN, MissionMode, MissionType
from ledger.text import storable

ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}")
NO_NUL = r"^[^\u0000]*$"
BLANK = " \t\n\v\f\r"
NOT_BLANK = r"^[^\u0000]*[^\u0000\t\n\v\f\r ][^\u0000]*$"


def _iso_time(value: Any) -> Any:
    """Only ISO 8601 text is a time here (pydantic would also read 0.5 as a timestamp)."""
    if isinstance(value, str) and not ISO_TIME.match(value):
        raise ValueError("an ISO 8601 time, e.g. 2026-11-24T09:30:00Z")
    return value


def _utc(moment: datetime) -> datetime:
    """A time the database can compare: with a zone (UTC if none given), years 1-9999."""
    try:
        return moment.replace(tzinfo=moment.tzinfo or UTC).astimezone(UTC)
    except OverflowError as error:
        raise ValueError("out of range once converted to UTC") from error


def _trimmed(text: str) -> str:
    """Storable text without surrounding (ASCII) whitespace, and not blank."""
    text = storable(text).strip(BLANK)
    if not text:
        raise ValueError("must not be blank")
    return text


# Text PostgreSQL can store: no NUL, no lone surrogate (422 naming the field); the
# patterns tell clients so (lone surrogates cannot be sent as UTF-8 at all).
Text = Annotated[
    str,
    StringConstraints(min_length=1, max_length=4_000),
    AfterValidator(_trimmed),
    Field(json_schema_extra={"pattern": NOT_BLANK}),
]
Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200),
    AfterValidator(_trimmed),
    Field(json_schema_extra={"pattern": NOT_BLANK}),
]
Reason = Annotated[
    str,
    StringConstraints(min_length=1, max_length=1_000),
    AfterValidator(_trimmed),
    Field(json_schema_extra={"pattern": NOT_BLANK}),
]
Storable = Annotated[str, AfterValidator(storable), Field(json_schema_extra={"pattern": NO_NUL})]
SourceRef = Annotated[Storable, StringConstraints(max_length=2_000)]
Moment = Annotated[datetime, BeforeValidator(_iso_time), AfterValidator(_utc)]
MissionId = Annotated[
    str, Path(pattern=ID_PATTERN, description="A mission id (as POST /missions answered it)")
]
ApprovalId = Annotated[
    str, Path(pattern=ID_PATTERN, description="An approval's id (its writeback id)")
]
ContentHash = Annotated[
    str, Path(pattern=r"^[0-9a-f]{64}$", description="sha256 of the content, lowercase hex")
]
MediaType = Literal["text/plain", "text/markdown", "text/csv", "application/json"]
MEDIA_TYPES: frozenset[str] = frozenset(get_args(MediaType))
UNION_TAGS.update(get_args(MissionType))  # a mission's `type` picks its model below


class Lead(BaseModel):
    """The CRM lead a CRM mission researches."""

    model_config = ConfigDict(extra="forbid")

    company: Name
    contact: Name


class MissionCreateBase(BaseModel):
    """What every mission request carries; budgets default to the root's settings."""

    model_config = ConfigDict(extra="forbid")

    type: MissionType
    mode: MissionMode
    objective: Text
    project_id: Name | None = None
    lead: Lead | None = None
    time_budget_ms: int | None = Field(default=None, gt=0, le=86_400_000)
    token_budget: int | None = Field(default=None, gt=0, le=10_000_000)

    @field_validator("time_budget_ms", "token_budget", mode="before")
    @classmethod
    def _not_boolean(cls, value: Any) -> Any:
        """JSON `true` is not the integer 1 (pydantic's lax mode would take it for one);
        1.0 is one, as JSON Schema says."""
        if isinstance(value, bool):
            raise ValueError("must be an integer, not a boolean")
        return value


class OracleMissionCreate(MissionCreateBase):
    """An Oracle mission: a reviewed answer about a project (`project_id` required)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "oracle",
                    "mode": "assisted",
                    "objective": "What is the delivery risk of project atlas this quarter?",
                    "project_id": "atlas",
                }
            ]
        }
    )

    type: Literal["oracle"]
    project_id: Name


class CrmMissionCreate(MissionCreateBase):
    """A CRM mission: lead intelligence and a writeback proposal (`lead` required)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "crm",
                    "mode": "assisted",
                    "objective": "Qualify Northwind Traders and propose a next step",
                    "lead": {"company": "Northwind Traders", "contact": "Ana Trujillo"},
                }
            ]
        }
    )

    type: Literal["crm"]
    lead: Lead


class CatalystMissionCreate(MissionCreateBase):
    """A Catalyst strategy mission (staging only at first)."""

    type: Literal["catalyst"]


MissionCreate = Annotated[
    OracleMissionCreate | CrmMissionCreate | CatalystMissionCreate, Field(discriminator="type")
]


class MissionLinks(BaseModel):
    self: str
    events: str
    evidence: str


class MissionAccepted(BaseModel):
    """202 answer: the mission id, where to look, and its status if already projected."""

    mission_id: str
    status: str
    links: MissionLinks


class MissionPublic(BaseModel):
    """A mission as the missions projection shows it, with its reviewed output."""

    mission_id: str
    type: str
    mode: str
    environment: str
    objective: str
    project_id: str | None
    lead_company: str | None
    lead_contact: str | None
    status: str
    stage: str
    status_since: datetime | None
    time_budget_ms: int
    token_budget: int
    tokens_used: int
    time_used_ms: int
    requested_by: str
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    output: str | None
    verdict: str | None
    failure_reason: str | None
    last_rejection: str | None
    replay_of: str | None
    replayed_as: list[str]
    last_sequence: int
    last_hash: str
    links: MissionLinks


class MissionPage(BaseModel):
    items: list[MissionPublic]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end"
    )


class EventPublic(BaseModel):
    """One entry of the audit trail."""

    sequence: int
    event_id: str
    event_type: str
    occurred_at: datetime
    actor: str
    causation_id: str
    correlation_id: str
    trace_id: str
    prev_hash: str
    hash: str
    data: dict[str, Any]


class EventPage(BaseModel):
    mission_id: str
    events: list[EventPublic]
    next_after_sequence: int | None


class ArtifactPublic(BaseModel):
    artifact_id: str
    kind: str
    content_hash: str
    source: str
    size_bytes: int
    recorded_at: datetime
    link: str


class PolicyDecisionPublic(BaseModel):
    sequence: int
    task_id: str
    tool: str
    decision: str
    rule_id: str
    reason: str
    decided_at: datetime


class TaskPublic(BaseModel):
    task_id: str
    kind: str
    description: str
    status: str
    attempt: int
    summary: str | None
    error: str | None
    tokens_used: int
    duration_ms: int
    notes: list[str] = Field(description="What the colony did to the provider's output")


class ReviewerPacketPublic(BaseModel):
    packet_hash: str
    verdict: str
    output: str
    checks: list[str]
    recorded_at: datetime
    packet: dict[str, Any] | None = Field(description="The stored packet document, if persisted")


class EvidencePublic(BaseModel):
    """Why the answer can be trusted: the packet, the evidence and the checks behind it."""

    mission_id: str
    status: str
    reviewer_packet: ReviewerPacketPublic | None
    artifacts: list[ArtifactPublic]
    tasks: list[TaskPublic]
    policy_decisions: list[PolicyDecisionPublic]


class ReasonBody(BaseModel):
    """An operator action's reason, recorded in the ledger."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"reason": "..."}]})

    reason: Reason


class ApprovalPublic(BaseModel):
    approval_id: str
    mission_id: str
    target: str
    record_ref: str
    changes: dict[str, str]
    rationale: str
    summary: str
    status: str
    requested_at: datetime
    age_seconds: float
    decided_at: datetime | None
    decided_by: str | None
    reason: str | None
    finished_at: datetime | None
    detail: str | None


class ApprovalQueue(BaseModel):
    """A page of the pending approvals, how many wait in all, and the latest decisions."""

    pending: list[ApprovalPublic] = Field(description="Oldest first, at most `pending_limit`")
    pending_total: int = Field(description="All pending approvals, on every page")
    oldest_pending_age_seconds: float = Field(
        description="How long the oldest pending approval has waited (0 if none)"
    )
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page of pending approvals; null at the end"
    )
    decided: list[ApprovalPublic] = Field(description="Newest first, at most `decided_limit`")


class ArtifactCreate(BaseModel):
    """An artifact the colony persists through the root: content-addressed by sha256."""

    model_config = ConfigDict(extra="forbid")

    mission_id: str | None = Field(
        default=None, pattern=ID_PATTERN, description="Also record it in this mission"
    )
    artifact_id: Name | None = None
    kind: Name = "document"
    source: SourceRef = ""
    media_type: MediaType = "text/plain"
    content: Storable = Field(description="The artifact's text (UTF-8)")


class ArtifactStored(BaseModel):
    content_hash: str
    size_bytes: int
    link: str


MAX_BATCH_ARTIFACTS = 20
"""A batch's artifacts for one mission become one RecordArtifacts: at most
ledger.commands.MAX_ARTIFACTS_PER_RECORD (tests/unit/gateway/test_artifact_batch.py)."""


class ArtifactBatch(BaseModel):
    """Several artifacts in one request (a research task's sources): stored together."""

    model_config = ConfigDict(extra="forbid")

    artifacts: list[ArtifactCreate] = Field(min_length=1, max_length=MAX_BATCH_ARTIFACTS)


class ArtifactsStored(BaseModel):
    stored: list[ArtifactStored] = Field(description="In the order they were sent")
