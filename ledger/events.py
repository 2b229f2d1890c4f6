"""Events: immutable facts about a mission, in past tense, in the mission's total order."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from ledger.commands import MissionMode, MissionType

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
    """Base of every event's own fields; the class name is the event type."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class MissionRequested(EventBody):
    """A mission was opened, as normalised by the root."""

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


EVENT_TYPES: dict[str, type[EventBody]] = {
    cls.__name__: cls for cls in (MissionRequested, CommandRejected)
}
