"""Missions: intake, reads from projections, and the operator's fail and replay."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response, status

from gateway.auth import require
from gateway.command_outcome import (
    conflict_if_rejected,
    derived_id,
    send_and_wait,
)
from gateway.keys import Caller
from gateway.mission_models import (
    ArtifactPublic,
    EventPage,
    EventPublic,
    EvidencePublic,
    MissionAccepted,
    MissionCreate,
    MissionId,
    MissionLinks,
    MissionPage,
    MissionPublic,
    Moment,
    PolicyDecisionPublic,
    ReasonBody,
    ReviewerPacketPublic,
    TaskPublic,
)
from gateway.problems import DependencyDownError, ProblemError, problems
from gateway.rollout import refusal
from gateway.runtime import GatewayRuntime
from infra.tracing import mission_span
from ledger.commands import FailMission, MissionType, ReplayMission, RequestMission
from ledger.state import TERMINAL_STATUSES, MissionStatus
from projections import queries

router = APIRouter(prefix="/missions", tags=["missions"])
Writer = Annotated[Caller, Depends(require("service", "operator"))]
Reader = Annotated[Caller, Depends(require("service", "operator", "auditor"))]
Operator = Annotated[Caller, Depends(require("operator"))]
IdempotencyKey = Annotated[
    str | None,
    Header(max_length=200, description="Retries with the same key return the same mission"),
]
Prefer = Annotated[
    str | None,
    Header(
        max_length=200,
        description=(
            "`respond-async` (RFC 7240): answer as soon as the ledger's log holds the request"
            " (status `accepted`), without waiting up to SYNC_WAIT_MS for the mission to be"
            " projected; the answer then carries `Preference-Applied: respond-async`"
        ),
    ),
]
TraceParent = Annotated[
    str | None,
    Header(description="W3C trace context: the mission's trace continues the caller's"),
]
READ = problems(401, 403, 404, 422, 503, s404="No such mission")


def runtime_of(request: Request) -> GatewayRuntime:
    runtime: GatewayRuntime = request.app.state.runtime
    return runtime


def refuse_while_draining(request: Request) -> None:
    """503 `shutting_down` for new missions once the root is stopping."""
    if request.app.state.draining:
        raise ProblemError(
            503,
            "shutting_down",
            "the root is stopping; send the mission again in a moment",
            headers={"Retry-After": "5"},
        )


async def effective_step(runtime: GatewayRuntime) -> int:
    """The rollout step intake obeys: the ledger's step for this environment, bounded by
    VELOCITY_ROLLOUT_STEP. Local development reads no step (it accepts everything)."""
    settings = runtime.settings
    if settings.VELOCITY_ENV == "local":
        return settings.VELOCITY_ROLLOUT_STEP
    ledger_step = await queries.rollout_step(runtime.database, settings.VELOCITY_ENV)
    return min(ledger_step, settings.VELOCITY_ROLLOUT_STEP)


def links(mission_id: str) -> MissionLinks:
    base = f"/missions/{mission_id}"
    return MissionLinks(self=base, events=f"{base}/events", evidence=f"{base}/evidence")


def public(row: dict[str, Any]) -> MissionPublic:
    return MissionPublic(**row, links=links(row["mission_id"]))


async def existing(runtime: GatewayRuntime, mission_id: str) -> dict[str, Any]:
    row = await queries.mission(runtime.database, mission_id)
    if row is None:
        raise ProblemError(404, "mission_not_found", f"no mission {mission_id}")
    return row


def request_body(body: MissionCreate, runtime: GatewayRuntime) -> RequestMission:
    settings = runtime.settings
    return RequestMission(
        mission_type=body.type,
        mode=body.mode,
        objective=body.objective,
        environment=settings.VELOCITY_ENV,
        time_budget_ms=body.time_budget_ms or settings.COLONY_DEFAULT_TIME_BUDGET_MS,
        token_budget=body.token_budget or settings.COLONY_DEFAULT_TOKEN_BUDGET,
        project_id=body.project_id,
        lead_company=body.lead.company if body.lead else None,
        lead_contact=body.lead.contact if body.lead else None,
    )


def same_request(row: dict[str, Any], wanted: RequestMission) -> bool:
    return (row["type"], row["mode"], row["objective"], row["project_id"]) == (
        wanted.mission_type,
        wanted.mode,
        wanted.objective,
        wanted.project_id,
    )


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=MissionAccepted,
    responses=problems(
        400,
        401,
        403,
        409,
        413,
        422,
        503,
        s409="Idempotency-Key reused for a different mission",
        s422="Invalid mission, or not enabled at this rollout step",
        s503="Colony disabled, or broker/database unavailable",
    ),
)
async def create_mission(
    body: Annotated[MissionCreate, Body()],
    request: Request,
    response: Response,
    caller: Writer,
    idempotency_key: IdempotencyKey = None,
    traceparent: TraceParent = None,
    prefer: Prefer = None,
) -> MissionAccepted:
    """Open a mission: normalise, check rollout rules, append RequestMission."""
    refuse_while_draining(request)
    respond_async = prefer is not None and "respond-async" in prefer.lower()
    accepted, waited = await open_mission(
        runtime_of(request), caller, body, idempotency_key, respond_async
    )
    response.headers["Location"] = accepted.links.self
    if respond_async and not waited:
        response.headers["Preference-Applied"] = "respond-async"
    return accepted


async def open_mission(
    runtime: GatewayRuntime,
    caller: Caller,
    body: MissionCreate,
    idempotency_key: str | None,
    respond_async: bool = False,
) -> tuple[MissionAccepted, bool]:
    """The one intake path (HTTP and MCP): the mission accepted, and whether the answer
    waited for its projection (False: the log holds it, the views may not yet).

    Only a request with an Idempotency-Key can name a mission that exists (a retry): only
    then is the view asked first. Without one the id is new, and the answer costs no
    query but the shared wait for the request's outcome (gateway/outcomes.py)."""
    settings = runtime.settings
    if not settings.COLONY_ENABLED:
        raise ProblemError(503, "colony_disabled", "COLONY_ENABLED is false; reads still work")
    step = await effective_step(runtime)
    refused = refusal(settings.VELOCITY_ENV, step, body.type, body.mode)
    if refused:
        raise ProblemError(
            422, "rollout_not_enabled", refused, errors=[{"field": "mode", "message": refused}]
        )
    wanted = request_body(body, runtime)
    mission_id = derived_id(caller.label, idempotency_key or uuid.uuid4().hex)
    command = runtime.command(mission_id, wanted, caller, derived_id("request", mission_id))
    if idempotency_key is not None:
        try:
            row = await queries.mission(runtime.database, mission_id)
        except DependencyDownError:
            # Intake stays open while only PostgreSQL is down: the broker takes the command,
            # the decider dedupes a retried one, the projection catches up later.
            await runtime.commands.send(command)
            return accepted(mission_id, "accepted"), False
        if row is not None:
            if not same_request(row, wanted):
                raise ProblemError(
                    409, "idempotency_conflict", "this Idempotency-Key opened a different mission"
                )
            return accepted(mission_id, row["status"]), True
    if respond_async:
        await runtime.commands.send(command)
        return accepted(mission_id, "accepted"), False

    async def projected() -> bool:
        try:
            return await queries.mission(runtime.database, mission_id) is not None
        except DependencyDownError:
            return False  # accepted: the log holds the request, the view will show it

    outcome = await send_and_wait(runtime, command, projected, applied_is_done=True)
    conflict_if_rejected(outcome)
    return accepted(mission_id, "requested" if outcome.done else "accepted"), True


def accepted(mission_id: str, status: str) -> MissionAccepted:
    return MissionAccepted(mission_id=mission_id, status=status, links=links(mission_id))


@router.get(
    "", response_model=MissionPage, responses=problems(401, 403, 422, 503, s422="Bad filter")
)
async def list_missions(
    request: Request,
    caller: Reader,
    type: Annotated[MissionType | None, Query(description="Mission type")] = None,
    status: Annotated[MissionStatus | None, Query(description="e.g. awaiting_approval")] = None,
    created_after: Moment | None = None,
    created_before: Moment | None = None,
    cursor: Annotated[
        str | None, Query(pattern=queries.CURSOR_PATTERN, description="`next_cursor` of a page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> MissionPage:
    """Missions, newest first, filtered; follow `next_cursor` for more."""
    position = queries.decode_cursor(cursor) if cursor else None
    items, next_cursor = await queries.missions_page(
        runtime_of(request).database,
        mission_type=type,
        status=status,
        created_after=created_after,
        created_before=created_before,
        cursor=position,
        limit=limit,
    )
    return MissionPage(items=[public(row) for row in items], next_cursor=next_cursor)


@router.get("/{mission_id}", response_model=MissionPublic, responses=READ)
async def get_mission(mission_id: MissionId, request: Request, caller: Reader) -> MissionPublic:
    """A mission's state and reviewed output, as projected."""
    return public(await existing(runtime_of(request), mission_id))


@router.get("/{mission_id}/events", response_model=EventPage, responses=READ)
async def get_events(
    mission_id: MissionId,
    request: Request,
    caller: Reader,
    after_sequence: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> EventPage:
    """The audit trail: every event with its sequence and hashes, oldest first."""
    runtime = runtime_of(request)
    await existing(runtime, mission_id)
    rows = await queries.events_page(runtime.database, mission_id, after_sequence, limit)
    events = [EventPublic(**(row | {"data": json.loads(row["data"])})) for row in rows]
    more = len(events) == limit
    return EventPage(
        mission_id=mission_id,
        events=events,
        next_after_sequence=events[-1].sequence if more else None,
    )


@router.get("/{mission_id}/evidence", response_model=EvidencePublic, responses=READ)
async def get_evidence(mission_id: MissionId, request: Request, caller: Reader) -> EvidencePublic:
    """The reviewer packet with its evidence: artifacts, tasks and policy decisions."""
    return await mission_evidence(runtime_of(request), mission_id)


async def mission_evidence(runtime: GatewayRuntime, mission_id: str) -> EvidencePublic:
    """A mission's reviewer packet and evidence (HTTP and MCP)."""
    row = await existing(runtime, mission_id)
    found = await queries.evidence(runtime.database, mission_id)
    packet = None
    if latest := found["packet"]:
        content = latest.pop("content")
        packet = ReviewerPacketPublic(**latest, packet=json.loads(content) if content else None)
    return EvidencePublic(
        mission_id=mission_id,
        status=row["status"],
        reviewer_packet=packet,
        artifacts=[
            ArtifactPublic(**a, link=f"/artifacts/{a['content_hash']}") for a in found["artifacts"]
        ],
        tasks=[TaskPublic(**t) for t in found["tasks"]],
        policy_decisions=[PolicyDecisionPublic(**d) for d in found["decisions"]],
    )


@router.post(
    "/{mission_id}/fail",
    response_model=MissionPublic,
    responses={
        202: {"description": "Accepted, not yet projected", "model": MissionPublic},
        **problems(400, 401, 403, 404, 409, 413, 422, 503, s409="The mission is already terminal"),
    },
)
async def fail_mission(
    mission_id: MissionId,
    body: ReasonBody,
    request: Request,
    response: Response,
    caller: Operator,
    idempotency_key: IdempotencyKey = None,
) -> MissionPublic:
    """Mark a mission failed (operator); the reason is recorded in the ledger."""
    runtime = runtime_of(request)
    row = await existing(runtime, mission_id)
    if row["status"] in TERMINAL_STATUSES:
        raise ProblemError(409, "mission_terminal", f"mission is already {row['status']}")
    command_id = derived_id("fail", mission_id, idempotency_key or uuid.uuid4().hex)

    async def failed() -> bool:
        now = await queries.mission(runtime.database, mission_id)
        return now is not None and now["status"] == "failed"

    with mission_span("fail mission", await queries.mission_trace(runtime.database, mission_id)):
        command = runtime.command(mission_id, FailMission(reason=body.reason), caller, command_id)
        outcome = await send_and_wait(runtime, command, failed)
    conflict_if_rejected(outcome)
    if not outcome.done:
        response.status_code = status.HTTP_202_ACCEPTED
    return public(await existing(runtime, mission_id))


@router.post(
    "/{mission_id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=MissionAccepted,
    responses=problems(400, 401, 403, 404, 409, 413, 422, 503, s409="The mission is not terminal"),
)
async def replay_mission(
    mission_id: MissionId,
    body: ReasonBody,
    request: Request,
    response: Response,
    caller: Operator,
    idempotency_key: IdempotencyKey = None,
) -> MissionAccepted:
    """Run a terminal mission again as a new mission linked to the original."""
    refuse_while_draining(request)
    runtime = runtime_of(request)
    row = await existing(runtime, mission_id)
    if row["status"] not in TERMINAL_STATUSES:
        raise ProblemError(
            409, "mission_not_terminal", f"mission is {row['status']}; fail or cancel it first"
        )
    key = idempotency_key or uuid.uuid4().hex
    new_id = derived_id("replay", mission_id, key)

    async def recorded() -> bool:
        now = await queries.mission(runtime.database, mission_id)
        return now is not None and new_id in now["replayed_as"]

    with mission_span("replay mission", await queries.mission_trace(runtime.database, mission_id)):
        replay = runtime.command(
            mission_id,
            ReplayMission(new_mission_id=new_id, reason=body.reason),
            caller,
            derived_id("replay-command", mission_id, key),
        )
        conflict_if_rejected(await send_and_wait(runtime, replay, recorded))
    again = RequestMission(
        mission_type=row["type"],
        mode=row["mode"],
        objective=row["objective"],
        environment=runtime.settings.VELOCITY_ENV,
        time_budget_ms=row["time_budget_ms"],
        token_budget=row["token_budget"],
        project_id=row["project_id"],
        lead_company=row["lead_company"],
        lead_contact=row["lead_contact"],
        replay_of=mission_id,
    )
    command = runtime.command(new_id, again, caller, derived_id("request", new_id), new_id)
    await runtime.commands.send(command)
    response.headers["Location"] = f"/missions/{new_id}"
    return MissionAccepted(mission_id=new_id, status="accepted", links=links(new_id))
