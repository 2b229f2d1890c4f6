"""Mission intake and reads. Writes become commands on Kafka; reads come from projections."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response, status

from gateway.auth import Caller, require
from gateway.mission_models import MissionAccepted, MissionCreate, MissionLinks, MissionPublic
from gateway.problems import ProblemError
from gateway.runtime import GatewayRuntime
from ledger.commands import Command, CommandMeta, RequestMission

router = APIRouter(prefix="/missions", tags=["missions"])
ID_NAMESPACE = uuid.UUID("0b7c2f8e-51a4-4d8e-9a61-2f3d5c7e9b14")
Writer = Annotated[Caller, Depends(require("service", "operator"))]
Reader = Annotated[Caller, Depends(require("service", "operator", "auditor"))]

MISSION_ROW = """
SELECT mission_id, mission_type AS type, mode, environment, objective, status, stage,
       time_budget_ms, token_budget, requested_by, created_at, updated_at,
       last_sequence, last_hash
FROM missions WHERE mission_id = $1
"""


def runtime_of(request: Request) -> GatewayRuntime:
    runtime: GatewayRuntime = request.app.state.runtime
    return runtime


def links(mission_id: str) -> MissionLinks:
    return MissionLinks(self=f"/missions/{mission_id}", events=f"/missions/{mission_id}/events")


def trace_id_from(traceparent: str | None) -> str:
    """The W3C trace id of the caller's traceparent, or a new one."""
    parts = (traceparent or "").split("-")
    if len(parts) == 4 and len(parts[1]) == 32:
        return parts[1]
    return uuid.uuid4().hex


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=MissionAccepted)
async def create_mission(
    body: MissionCreate,
    request: Request,
    response: Response,
    caller: Writer,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    traceparent: Annotated[str | None, Header()] = None,
) -> MissionAccepted:
    """Open a mission: append RequestMission, wait briefly for its projection."""
    runtime = runtime_of(request)
    settings = runtime.settings
    if not settings.COLONY_ENABLED:
        raise ProblemError(503, "colony_disabled", "COLONY_ENABLED is false; reads still work")
    mission_id = (
        str(uuid.uuid5(ID_NAMESPACE, f"{caller.label}/{idempotency_key}"))
        if idempotency_key
        else str(uuid.uuid4())
    )
    command = Command(
        meta=CommandMeta(
            command_id=str(uuid.uuid5(ID_NAMESPACE, f"request/{mission_id}")),
            mission_id=mission_id,
            issued_at=datetime.now(UTC),
            correlation_id=mission_id,
            trace_id=trace_id_from(traceparent),
            actor=caller.label,
        ),
        body=RequestMission(
            mission_type=body.type,
            mode=body.mode,
            objective=body.objective,
            environment=settings.VELOCITY_ENV,
            time_budget_ms=body.time_budget_ms or settings.COLONY_DEFAULT_TIME_BUDGET_MS,
            token_budget=body.token_budget or settings.COLONY_DEFAULT_TOKEN_BUDGET,
            project_id=body.project_id,
            lead_company=body.lead.company if body.lead else None,
            lead_contact=body.lead.contact if body.lead else None,
        ),
    )
    await runtime.commands.send(command)
    response.headers["Location"] = f"/missions/{mission_id}"
    row = await wait_for_projection(runtime, mission_id, settings.SYNC_WAIT_MS / 1000)
    return MissionAccepted(
        mission_id=mission_id,
        status=row["status"] if row else "accepted",
        links=links(mission_id),
    )


async def wait_for_projection(
    runtime: GatewayRuntime, mission_id: str, wait_s: float
) -> dict[str, object] | None:
    """The mission's row once projected, polling up to `wait_s`; None if not yet there."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    pause = 0.01
    while True:
        row = await runtime.database.fetchrow(MISSION_ROW, mission_id)
        if row is not None or loop.time() >= deadline:
            return dict(row) if row else None
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.1)


@router.get("/{mission_id}", response_model=MissionPublic, responses={404: {}})
async def get_mission(mission_id: str, request: Request, caller: Reader) -> MissionPublic:
    """A mission's state as projected."""
    row = await runtime_of(request).database.fetchrow(MISSION_ROW, mission_id)
    if row is None:
        raise ProblemError(404, "mission_not_found", f"no mission {mission_id}")
    return MissionPublic(**dict(row), links=links(mission_id))
