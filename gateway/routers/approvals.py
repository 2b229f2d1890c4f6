"""The approval queue and the operator's decisions on proposed writebacks."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status

from gateway.auth import require
from gateway.command_outcome import (
    conflict_if_rejected,
    derived_id,
    send_and_wait,
)
from gateway.keys import Caller
from gateway.mission_models import ApprovalId, ApprovalPublic, ApprovalQueue, ReasonBody
from gateway.problems import WRITE_STATUSES, ProblemError, problems
from gateway.runtime import GatewayRuntime
from infra.tracing import mission_span
from ledger.commands import ID_PATTERN, ApproveWriteback, CommandBody, RejectWriteback
from projections import queries

router = APIRouter(prefix="/approvals", tags=["approvals"])
Operator = Annotated[Caller, Depends(require("operator"))]
Viewer = Annotated[Caller, Depends(require("operator", "auditor", "service"))]
DECISION_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"description": "Accepted by the broker, not yet projected", "model": ApprovalPublic},
    **problems(
        *WRITE_STATUSES,
        s404="No such approval",
        s409="The approval is no longer pending",
    ),
}


def public(row: dict[str, Any]) -> ApprovalPublic:
    changes = row["changes"]
    return ApprovalPublic(
        **(row | {"changes": json.loads(changes) if isinstance(changes, str) else changes})
    )


PendingLimit = Annotated[
    int, Query(ge=1, le=queries.APPROVAL_PAGE_MAX, description="Pending approvals a page")
]
DecidedLimit = Annotated[int, Query(ge=0, le=500, description="Latest decisions shown")]
QueueCursor = Annotated[
    str | None, Query(pattern=queries.CURSOR_PATTERN, description="`next_cursor` of a page")
]
MissionFilter = Annotated[
    str | None, Query(pattern=ID_PATTERN, description="Only this mission's approvals")
]


@router.get(
    "", response_model=ApprovalQueue, responses=problems(401, 403, 422, 503, s422="Bad filter")
)
async def approval_queue(
    request: Request,
    caller: Viewer,
    pending_limit: PendingLimit = 100,
    cursor: QueueCursor = None,
    decided_limit: DecidedLimit = 50,
    mission_id: MissionFilter = None,
) -> ApprovalQueue:
    """Pending approvals oldest first, with their age, a page at a time (follow
    `next_cursor`); how many wait in all; recent decisions with who and why. `mission_id`
    narrows all three to one mission's."""
    page = QueuePage(pending_limit, cursor, decided_limit, mission_id)
    return await queue(request.app.state.runtime, page)


@dataclass(frozen=True)
class QueuePage:
    """Which part of the approval queue to read (HTTP and MCP take the same arguments)."""

    pending_limit: int
    cursor: str | None
    decided_limit: int
    mission_id: str | None


async def queue(runtime: GatewayRuntime, page: QueuePage) -> ApprovalQueue:
    """The approval queue (HTTP and MCP)."""
    db = runtime.database
    position = queries.decode_cursor(page.cursor) if page.cursor else None
    pending, next_cursor = await queries.pending_approvals(
        db, position, page.pending_limit, page.mission_id
    )
    total, oldest_age_s = await queries.approval_backlog(db, page.mission_id)
    decided = await queries.decided_approvals(db, page.decided_limit, page.mission_id)
    return ApprovalQueue(
        pending=[public(r) for r in pending],
        pending_total=total,
        oldest_pending_age_seconds=oldest_age_s,
        next_cursor=next_cursor,
        decided=[public(r) for r in decided],
    )


async def decide(
    request: Request,
    response: Response,
    caller: Caller,
    approval_id: str,
    decision: str,
    body: CommandBody,
) -> ApprovalPublic:
    """The HTTP answer to an operator's decision: 202 while not yet projected."""
    approval, done = await decide_writeback(
        request.app.state.runtime, caller, approval_id, decision, body
    )
    if not done:
        response.status_code = status.HTTP_202_ACCEPTED
    return approval


async def decide_writeback(
    runtime: GatewayRuntime, caller: Caller, approval_id: str, decision: str, body: CommandBody
) -> tuple[ApprovalPublic, bool]:
    """Send the operator's decision once (HTTP and MCP), signed as the operator's; the same
    decision repeated answers the same. Returns the approval and whether it is projected."""
    if caller.role != "operator":
        raise ProblemError(403, "forbidden", f"role {caller.role} may not decide approvals")
    row = await queries.approval(runtime.database, approval_id)
    if row is None:
        raise ProblemError(404, "approval_not_found", f"no approval {approval_id}")
    if row["status"] != "pending":
        if row["decided_by"] == caller.label and row["status"].startswith(decision[:5]):
            return public(row), True  # an idempotent repeat of this operator's own decision
        raise ProblemError(
            409, "approval_not_pending", f"approval {approval_id} is {row['status']}"
        )

    async def decided() -> bool:
        now = await queries.approval(runtime.database, approval_id)
        return now is not None and now["status"] != "pending"

    mission = await queries.mission_trace(runtime.database, row["mission_id"])
    with mission_span(f"{decision} writeback", mission):
        command_id = derived_id(decision, approval_id, caller.label)
        command = runtime.command(row["mission_id"], body, caller, command_id)
        outcome = await send_and_wait(runtime, command, decided)
    conflict_if_rejected(outcome)
    return public(await queries.approval(runtime.database, approval_id) or row), outcome.done


@router.post("/{approval_id}/approve", response_model=ApprovalPublic, responses=DECISION_RESPONSES)
async def approve(
    approval_id: ApprovalId,
    body: ReasonBody,
    request: Request,
    response: Response,
    caller: Operator,
) -> ApprovalPublic:
    """Approve a proposed writeback (operator only); the executor may then apply it."""
    command = ApproveWriteback(writeback_id=approval_id, reason=body.reason)
    return await decide(request, response, caller, approval_id, "approved", command)


@router.post("/{approval_id}/reject", response_model=ApprovalPublic, responses=DECISION_RESPONSES)
async def reject(
    approval_id: ApprovalId,
    body: ReasonBody,
    request: Request,
    response: Response,
    caller: Operator,
) -> ApprovalPublic:
    """Reject a proposed writeback (operator only); the CRM stays untouched."""
    command = RejectWriteback(writeback_id=approval_id, reason=body.reason)
    return await decide(request, response, caller, approval_id, "rejected", command)
