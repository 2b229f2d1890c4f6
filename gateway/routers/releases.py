"""Release readiness as ledger data: gate runs recorded check by check, their signed
reports, and this environment's rollout step, advanced only on the evidence the spec
names (gateway/rollout.py) and recorded with the evidence's hash."""

from __future__ import annotations

import hashlib
import uuid
from importlib.metadata import version as package_version
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status

from gateway.auth import require
from gateway.command_outcome import (
    conflict_if_rejected,
    derived_id,
    send_and_wait,
)
from gateway.keys import Caller
from gateway.problems import WRITE_STATUSES, ProblemError, problems
from gateway.release_models import (
    Environment,
    GateCheckCreate,
    GateRunCreate,
    GateRunList,
    GateRunPublic,
    RolloutChange,
    RolloutHistoryItem,
    RolloutPublic,
    RolloutStep,
    RunId,
    SignedReport,
)
from gateway.rollout import advance_refusal
from gateway.runtime import GatewayRuntime
from ledger.authority import document_refusal, parse_verify_keys
from ledger.canonical_json import canonical_json
from ledger.commands import (
    AdvanceRollout,
    CommandBody,
    CompleteGateRun,
    RecordGateCheck,
    RollBackRollout,
    StartGateRun,
)
from ledger.release import gate_run_stream, rollout_stream
from projections import queries

router = APIRouter(prefix="/releases", tags=["releases"])
Operator = Annotated[Caller, Depends(require("operator"))]
Viewer = Annotated[Caller, Depends(require("operator", "auditor"))]
WRITE = problems(
    *WRITE_STATUSES,
    s409="Refused: by the ledger's rules, another environment's run, or evidence missing",
)
ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"description": "Accepted, not yet projected"},
    **WRITE,
}
READ = problems(401, 403, 404, 422, 503, s404="No such gate run")


def release_version() -> str:
    """The version of the code this root runs: what a gate run certifies."""
    return package_version("velocity-colony-ledger")


def runtime_of(request: Request) -> GatewayRuntime:
    runtime: GatewayRuntime = request.app.state.runtime
    return runtime


async def record(
    request: Request,
    caller: Caller,
    stream_id: str,
    body: CommandBody,
    command_id: str,
    done: Any,
) -> bool:
    """Send one release command as `caller` (signed), wait briefly; True once projected."""
    runtime = runtime_of(request)
    command = runtime.command(stream_id, body, caller, command_id)
    outcome = await send_and_wait(runtime, command, done)
    conflict_if_rejected(outcome)
    return outcome.done


async def existing_run(runtime: GatewayRuntime, run_id: str) -> dict[str, Any]:
    run = await queries.gate_run(runtime.database, run_id)
    if run is None:
        raise ProblemError(404, "gate_run_not_found", f"no gate run {run_id}")
    return run


@router.post(
    "/gates",
    status_code=status.HTTP_201_CREATED,
    response_model=GateRunPublic,
    responses=ACCEPTED,
)
async def start_gate_run(
    body: GateRunCreate, request: Request, response: Response, caller: Operator
) -> GateRunPublic | Response:
    """Open a gate run of this environment (`velocity gates run` does this)."""
    runtime = runtime_of(request)
    if body.environment != runtime.settings.VELOCITY_ENV:
        detail = f"this root serves {runtime.settings.VELOCITY_ENV}, not {body.environment}"
        raise ProblemError(409, "wrong_environment", detail)
    command = StartGateRun(**body.model_dump())

    async def started() -> bool:
        return await queries.gate_run(runtime.database, body.run_id) is not None

    stream = gate_run_stream(body.run_id)
    if not await record(request, caller, stream, command, derived_id("gate", stream), started):
        return Response(status_code=status.HTTP_202_ACCEPTED)
    response.headers["Location"] = f"/releases/gates/{body.run_id}"
    return GateRunPublic(**await existing_run(runtime, body.run_id))


@router.post(
    "/gates/{run_id}/checks",
    status_code=status.HTTP_201_CREATED,
    response_model=GateRunPublic,
    responses=ACCEPTED,
)
async def record_gate_check(
    run_id: RunId, body: GateCheckCreate, request: Request, caller: Operator
) -> GateRunPublic | Response:
    """Record one check's result with its evidence."""
    runtime = runtime_of(request)
    before = await existing_run(runtime, run_id)
    command = RecordGateCheck(**body.model_dump())
    stream = gate_run_stream(run_id)
    command_id = derived_id("gate-check", stream, str(body.gate), body.check)

    async def recorded() -> bool:
        now = await queries.gate_run(runtime.database, run_id)
        return now is not None and len(now["results"]) > len(before["results"])

    if not await record(request, caller, stream, command, command_id, recorded):
        return Response(status_code=status.HTTP_202_ACCEPTED)
    return GateRunPublic(**await existing_run(runtime, run_id))


@router.post(
    "/gates/{run_id}/complete",
    response_model=GateRunPublic,
    responses=ACCEPTED,
)
async def complete_gate_run(
    run_id: RunId, request: Request, caller: Operator
) -> GateRunPublic | Response:
    """Close the run; the ledger decides whether it passed from the checks it holds."""
    runtime = runtime_of(request)
    await existing_run(runtime, run_id)
    stream = gate_run_stream(run_id)

    async def completed() -> bool:
        now = await queries.gate_run(runtime.database, run_id)
        return now is not None and now["completed_at"] is not None

    command_id = derived_id("gate-complete", stream)
    if not await record(request, caller, stream, CompleteGateRun(), command_id, completed):
        return Response(status_code=status.HTTP_202_ACCEPTED)
    return GateRunPublic(**await existing_run(runtime, run_id))


@router.get("/gates", response_model=GateRunList, responses=problems(401, 403, 422, 503))
async def list_gate_runs(
    request: Request,
    caller: Viewer,
    environment: Environment | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> GateRunList:
    """Gate runs newest first, each check with its evidence (operators and auditors)."""
    runs = await queries.gate_runs(runtime_of(request).database, environment, limit)
    return GateRunList(runs=[GateRunPublic(**run) for run in runs])


@router.get("/gates/{run_id}", response_model=GateRunPublic, responses=READ)
async def get_gate_run(run_id: RunId, request: Request, caller: Viewer) -> GateRunPublic:
    return GateRunPublic(**await existing_run(runtime_of(request), run_id))


@router.get(
    "/gates/{run_id}/report",
    response_model=SignedReport,
    responses=problems(
        401, 403, 404, 409, 422, 503, s404="No such gate run", s409="The run is not complete"
    ),
)
async def gate_report(run_id: RunId, request: Request, caller: Viewer) -> SignedReport:
    """The run signed by this root: the evidence `velocity rollout advance` carries to
    production (`velocity gates export`)."""
    runtime = runtime_of(request)
    run = GateRunPublic(**await existing_run(runtime, run_id))
    if run.completed_at is None:
        raise ProblemError(409, "gate_run_open", f"gate run {run_id} is not complete")
    document = run.model_dump(mode="json") | {
        "checks": [c.model_dump(mode="json") for c in run.results]
    }
    return SignedReport(**runtime.signer.sign_document(document))


@router.get("/rollout", response_model=RolloutPublic, responses=problems(401, 403, 503))
async def get_rollout(request: Request, caller: Viewer) -> RolloutPublic:
    """This environment's rollout: the ledger's step, the variable's bound, the history."""
    runtime = runtime_of(request)
    settings = runtime.settings
    steps, history = await queries.rollout(runtime.database)
    ledger_step = next((s["step"] for s in steps if s["environment"] == settings.VELOCITY_ENV), 1)
    return RolloutPublic(
        environment=settings.VELOCITY_ENV,
        ledger_step=ledger_step,
        upper_bound=settings.VELOCITY_ROLLOUT_STEP,
        effective_step=min(ledger_step, settings.VELOCITY_ROLLOUT_STEP),
        steps=[RolloutStep.model_validate(step) for step in steps],
        history=[RolloutHistoryItem.model_validate(change) for change in history],
    )


@router.post("/rollout/advance", response_model=RolloutPublic, responses=WRITE)
async def advance_rollout(body: RolloutChange, request: Request, caller: Operator) -> RolloutPublic:
    """Advance this environment, on the evidence its step needs (409 names what is missing)."""
    runtime = runtime_of(request)
    environment = runtime.settings.VELOCITY_ENV
    version = release_version()
    report = await checked_report(runtime, body.evidence)
    local_run = await queries.passing_run(runtime.database, environment, version)
    refused = advance_refusal(environment, body.to_step, version, local_run is not None, report)
    if refused:
        raise ProblemError(409, "rollout_evidence_missing", refused)
    evidence = body.evidence
    command = AdvanceRollout(
        environment=environment,
        to_step=body.to_step,
        reason=body.reason,
        evidence_hash=hashlib.sha256(canonical_json(evidence.model_dump())).hexdigest()
        if evidence
        else None,
        evidence_run_id=str(report["run_id"]) if report else local_run,
    )
    await move(request, caller, command)
    return await get_rollout(request, caller)


@router.post("/rollout/rollback", response_model=RolloutPublic, responses=WRITE)
async def roll_back_rollout(
    body: RolloutChange, request: Request, caller: Operator
) -> RolloutPublic:
    """Move this environment back to an earlier step (no evidence needed; a reason is)."""
    environment = runtime_of(request).settings.VELOCITY_ENV
    command = RollBackRollout(environment=environment, to_step=body.to_step, reason=body.reason)
    await move(request, caller, command)
    return await get_rollout(request, caller)


async def move(request: Request, caller: Caller, command: AdvanceRollout | RollBackRollout) -> None:
    """Send the change; done once the history shows it (a refusal is a 409 naming why)."""
    runtime = runtime_of(request)
    stream = rollout_stream(command.environment)
    before = await queries.rollout_sequence(runtime.database, command.environment)

    async def moved() -> bool:
        return await queries.rollout_sequence(runtime.database, command.environment) > before

    command_id = derived_id("rollout", stream, str(command.to_step), uuid.uuid4().hex)
    await record(request, caller, stream, command, command_id, moved)


async def checked_report(
    runtime: GatewayRuntime, evidence: SignedReport | None
) -> dict[str, Any] | None:
    """The report inside `evidence`, once its signature is checked against
    RELEASE_EVIDENCE_KEYS (422 when it does not hold)."""
    if evidence is None:
        return None
    keys = parse_verify_keys(runtime.settings.RELEASE_EVIDENCE_KEYS)
    refused = document_refusal(keys, evidence.model_dump())
    if refused:
        raise ProblemError(409, "evidence_not_signed", refused)
    return evidence.document
