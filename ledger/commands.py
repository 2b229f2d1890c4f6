"""Commands: what someone asks the ledger to do to a mission. Imperative names.

A command is a request, not a fact: the decider may turn it into events or into a
CommandRejected event. Every command carries a `command_id`, the idempotency key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MissionType = Literal["oracle", "crm", "catalyst"]
MissionMode = Literal["dry_run", "assisted", "autonomous"]


class CommandMeta(BaseModel):
    """Identity and provenance of a command (schemas_avro/velocity.CommandMeta.avsc)."""

    model_config = ConfigDict(frozen=True)

    command_id: str = Field(min_length=1)
    mission_id: str = Field(min_length=1)
    issued_at: datetime
    correlation_id: str
    trace_id: str
    actor: str = Field(min_length=1)


class CommandBody(BaseModel):
    """Base of every command's own fields; the class name is the command type."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class RequestMission(CommandBody):
    """Open a mission. The root has normalised it (budgets filled, text trimmed)."""

    mission_type: MissionType
    mode: MissionMode
    objective: str = Field(min_length=1, max_length=4_000)
    environment: str
    time_budget_ms: int = Field(gt=0)
    token_budget: int = Field(gt=0)
    project_id: str | None = None
    lead_company: str | None = None
    lead_contact: str | None = None
    replay_of: str | None = None


class Command(BaseModel):
    """A command as it travels on `mission.commands`."""

    model_config = ConfigDict(frozen=True)

    meta: CommandMeta
    body: CommandBody

    @property
    def command_type(self) -> str:
        return type(self.body).__name__


COMMAND_TYPES: dict[str, type[CommandBody]] = {cls.__name__: cls for cls in (RequestMission,)}
