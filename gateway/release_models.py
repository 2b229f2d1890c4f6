"""Bodies and answers of the release routes: gate runs, their checks, signed reports and
the rollout step (gateway/routers/releases.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool

from gateway.mission_models import Reason, Storable
from ledger.commands import ID_PATTERN

Environment = Literal["local", "staging", "production"]


def _whole(value: Any) -> Any:
    """JSON integers only (4 or 4.0, as JSON Schema's "integer"): never true, never "4"."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be an integer")
    return value


NOT_BOOL = BeforeValidator(_whole)
"""Placed after a type's bounds, so the bounds stay in the OpenAPI schema."""
RunId = Annotated[str, Path(pattern=ID_PATTERN, description="A gate run's id")]


class GateRunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: Annotated[str, Field(pattern=ID_PATTERN)]
    version: Annotated[Storable, Field(min_length=1, max_length=100)]
    environment: Environment
    root_url: Annotated[Storable, Field(max_length=500)]


class GateCheckCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gate: Annotated[int, Field(ge=1, le=4), NOT_BOOL]
    check: Annotated[Storable, Field(min_length=1, max_length=200)]
    passed: StrictBool
    evidence: Annotated[Storable, Field(max_length=20_000)]
    duration_ms: Annotated[int, Field(ge=0, le=10**12), NOT_BOOL]


class GateCheckPublic(BaseModel):
    sequence: int
    gate: int
    check: str
    passed: bool
    evidence: str
    duration_ms: int
    recorded_at: datetime


class GateRunPublic(BaseModel):
    run_id: str
    version: str
    environment: str
    root_url: str
    started_by: str
    started_at: datetime
    completed_at: datetime | None
    passed: bool | None
    checks: int
    failed: int
    results: list[GateCheckPublic]


class GateRunList(BaseModel):
    runs: list[GateRunPublic]


class SignedReport(BaseModel):
    """A gate run as its root recorded it, signed with that root's Ed25519 key."""

    model_config = ConfigDict(extra="forbid")

    document: dict[str, Any]
    key_id: Annotated[str, Field(min_length=1, max_length=64)]
    signature: Annotated[str, Field(min_length=1, max_length=200)]


class RolloutChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to_step: Annotated[int, Field(ge=1, le=6), NOT_BOOL]
    reason: Reason
    evidence: SignedReport | None = None


class RolloutStep(BaseModel):
    environment: str
    step: int
    changed_at: datetime
    changed_by: str
    reason: str
    evidence_hash: str | None
    evidence_run_id: str | None


class RolloutHistoryItem(BaseModel):
    environment: str
    sequence: int
    from_step: int
    to_step: int
    direction: Literal["advanced", "rolled_back"]
    reason: str
    changed_by: str
    changed_at: datetime
    evidence_hash: str | None
    evidence_run_id: str | None


class RolloutPublic(BaseModel):
    environment: Environment
    """This root's environment."""
    ledger_step: int
    """The step the ledger holds for it (1 until advanced)."""
    upper_bound: int
    """VELOCITY_ROLLOUT_STEP: the step can never exceed it."""
    effective_step: int
    steps: list[RolloutStep]
    history: list[RolloutHistoryItem]
