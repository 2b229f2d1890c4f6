"""What the root accepts and shows for missions: separate Create and Public models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from ledger.commands import MissionMode, MissionType

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4_000)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class Lead(BaseModel):
    """The CRM lead a CRM mission researches."""

    model_config = ConfigDict(extra="forbid")

    company: Name
    contact: Name | None = None


class MissionCreate(BaseModel):
    """A mission request from the UI (through the root)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "type": "oracle",
                    "mode": "assisted",
                    "objective": "What is the delivery risk of project atlas this quarter?",
                    "project_id": "atlas",
                }
            ]
        },
    )

    type: MissionType
    mode: MissionMode
    objective: Text
    project_id: Name | None = None
    lead: Lead | None = None
    time_budget_ms: int | None = Field(default=None, gt=0, le=86_400_000)
    token_budget: int | None = Field(default=None, gt=0, le=10_000_000)


class MissionLinks(BaseModel):
    self: str
    events: str


class MissionAccepted(BaseModel):
    """202 answer: the mission id, where to look, and its status if already projected."""

    mission_id: str
    status: str
    links: MissionLinks


class MissionPublic(BaseModel):
    """A mission as the missions projection shows it."""

    mission_id: str
    type: str
    mode: str
    environment: str
    objective: str
    status: str
    stage: str
    time_budget_ms: int
    token_budget: int
    requested_by: str
    created_at: datetime
    updated_at: datetime
    last_sequence: int
    last_hash: str
    links: MissionLinks
