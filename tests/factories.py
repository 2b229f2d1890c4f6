"""Builders for commands (and the events they make) in tests: random ids, sensible
defaults, override what matters."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from ledger.authority import (
    LOCAL_KEY_ID,
    LOCAL_SIGNING_KEY,
    LOCAL_VERIFY_KEYS,
    OperatorAuthority,
    OperatorSigner,
    claims_operator,
)
from ledger.commands import (
    ApproveWriteback,
    BeginReview,
    CancelMission,
    Command,
    CommandBody,
    CommandMeta,
    CompleteMission,
    CompleteTask,
    PlannedTask,
    ProposeWriteback,
    RecordArtifact,
    RecordBudgetUse,
    RecordPlan,
    RecordReview,
    RecordToolDecision,
    RecordWritebackResult,
    RequestMission,
    StartPlanning,
    StartTask,
)
from ledger.events import RecordedEvent
from ledger.state import MissionState
from ledger.step import step

SIGNER = OperatorSigner(LOCAL_KEY_ID, LOCAL_SIGNING_KEY)
"""Signs as the local root does, so the deciders the tests start (local keys) trust it."""
AUTHORITY = OperatorAuthority.parse(LOCAL_VERIFY_KEYS)
OPERATOR = "operator:local-operator"


def command(
    mission_id: str,
    body: CommandBody,
    command_id: str | None = None,
    actor: str = "colony:test",
    issued_at: datetime | None = None,
    signed: bool = True,
) -> Command:
    """A command; one from an operator carries the local root's signature unless `signed`
    is False (a forgery)."""
    built = Command(
        meta=CommandMeta(
            command_id=command_id or str(uuid.uuid4()),
            mission_id=mission_id,
            issued_at=issued_at or datetime.now(UTC),
            correlation_id=mission_id,
            trace_id=uuid.uuid4().hex,
            actor=actor,
        ),
        body=body,
    )
    return SIGNER.sign(built) if signed and claims_operator(built) else built


def request_body(**overrides: Any) -> RequestMission:
    fields: dict[str, Any] = {
        "mission_type": "crm",
        "mode": "assisted",
        "objective": "Qualify Northwind Traders",
        "environment": "local",
        "time_budget_ms": 60_000,
        "token_budget": 10_000,
    }
    return RequestMission(**(fields | overrides))


def crm_script(mission_id: str, request: RequestMission | None = None) -> list[Command]:
    """Every command of a CRM mission from request to completion, approval included."""
    plan = [PlannedTask(task_id="research", kind="research", description="accounts")]
    writeback = f"wb-{mission_id}"
    bodies = [
        (request or request_body(), "service:local-service"),
        (StartPlanning(planner="planner"), "colony:planner"),
        (RecordPlan(tasks=plan, rationale="crm"), "colony:planner"),
        (StartTask(task_id="research", worker="w1"), "colony:worker"),
        (
            RecordToolDecision(
                task_id="research",
                tool="crm_lookup",
                decision="allowed",
                rule_id="crm.read",
                reason="read-only",
            ),
            "colony:policy",
        ),
        (
            RecordArtifact(
                artifact_id="crm-record",
                kind="crm_record",
                content_hash="c" * 64,
                source="crm://accounts/northwind",
                size_bytes=10,
            ),
            "colony:worker",
        ),
        (
            CompleteTask(task_id="research", summary="found", tokens_used=50, duration_ms=20),
            "colony:worker",
        ),
        (BeginReview(reviewer="reviewer"), "colony:reviewer"),
        (RecordReview(packet_hash="b" * 64, verdict="pass", output="brief"), "colony:reviewer"),
        (
            ProposeWriteback(
                writeback_id=writeback,
                target="crm",
                record_ref="account:northwind",
                changes={"next_step": "call"},
                rationale="fit",
            ),
            "colony:reviewer",
        ),
        (ApproveWriteback(writeback_id=writeback, reason="checked"), OPERATOR),
        (
            RecordWritebackResult(writeback_id=writeback, succeeded=True, detail="ok"),
            "colony:executor",
        ),
        (CompleteMission(output="brief"), "colony:reviewer"),
    ]
    return [command(mission_id, body, actor=actor) for body, actor in bodies]


def crm_awaiting_approval(mission_id: str, request: RequestMission | None = None) -> list[Command]:
    """A CRM mission's commands up to its proposed writeback (`wb-<mission id>`), which
    then waits for an operator."""
    script = crm_script(mission_id, request)
    proposed = next(i for i, c in enumerate(script) if isinstance(c.body, ProposeWriteback))
    return script[: proposed + 1]


def mission_history(
    mission_id: str, uses: int = 0, ending: CommandBody | None = None
) -> list[RecordedEvent]:
    """A mission's events as the decider records them: its request, `uses` budget
    records, then `ending` (if any: a cancellation comes from an operator) and one late
    command, rejected because the mission is over."""
    bodies: list[CommandBody] = [request_body()]
    bodies += [RecordBudgetUse(tokens=1, time_ms=1) for _ in range(uses)]
    if ending is not None:
        bodies += [ending, RecordBudgetUse(tokens=1, time_ms=1)]
    state, events = MissionState(mission_id=mission_id), []
    for body in bodies:
        actor = OPERATOR if isinstance(body, CancelMission) else "colony:test"
        item = command(mission_id, body, actor=actor)
        state, new = step(state, item, datetime.now(UTC), AUTHORITY)
        events += new
    return events
