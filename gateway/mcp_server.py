"""The root as an MCP server: agents (a NemoClaw sandbox, an IDE assistant) reach missions
through the Model Context Protocol, with the same keys, roles and code paths as HTTP.

Mounted at `/mcp` (Streamable HTTP). Stateless with JSON answers: each POST stands alone,
so any root replica can answer it and no session outlives a restart. The request guard
(gateway/guard.py) has already identified the caller by its bearer key, or refused the
request with 401, before a tool runs; each tool checks the caller's role as its HTTP route
does (a wrong role is a tool error naming the role). Approve and reject go through
`decide_writeback`, so an operator's decision is signed exactly as over HTTP.

Every call that reaches a tool is recorded: who, which tool, a SHA-256 of its arguments
(never the arguments: an objective may hold what the trail should not), and how it ended.
A call about an existing mission becomes a `McpCallRecorded` event in that mission's
stream; every call is also an `mcp_call` metric sample (colony.metrics, stored once by the
projector and counted in `velocity_mcp_calls_total`). DNS-rebinding protection is off:
it guards cookie- or origin-trusting servers, and a rebinding page cannot present a key.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from loguru import logger
from mcp.server.fastmcp import Context, FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.server.fastmcp.server import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import Field
from starlette.routing import Route

from gateway.console.pages import trail_of
from gateway.keys import Caller, Role
from gateway.mission_models import (
    ApprovalPublic,
    ApprovalQueue,
    EvidencePublic,
    MissionAccepted,
    MissionCreate,
    MissionPublic,
    Reason,
)
from gateway.problems import ProblemError
from gateway.routers import approvals, missions
from gateway.runtime import GatewayRuntime
from ledger.commands import ID_PATTERN, ApproveWriteback, RecordMcpCall, RejectWriteback
from ledger.history_limit import ended_cap
from ledger.metrics import Metric
from projections import queries

T = TypeVar("T")
PATH = "/mcp"
READERS: tuple[Role, ...] = ("service", "operator", "auditor")
WRITERS: tuple[Role, ...] = ("service", "operator")
Id = Annotated[str, Field(pattern=ID_PATTERN, description="A mission's or approval's id")]
INSTRUCTIONS = """\
The Velocity colony root: open missions, follow them, read their verified audit trail
and reviewer packet, and (operators only) decide proposed CRM writebacks. Every call is
recorded in the mission's immutable trail under your key's name."""


def arguments_hash(arguments: dict[str, Any]) -> str:
    """SHA-256 of the arguments as canonical JSON: equal arguments, equal hash."""
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class McpCall:
    """One tool call: who makes it, with what, and (once known) the mission it is about."""

    tool: str
    arguments: dict[str, Any]
    caller: Caller
    runtime: GatewayRuntime
    mission_id: str | None = None
    history_full: bool = False
    """The mission's history holds all it may (ledger/history_limit.py): the call is not
    sent to its stream, where the decider would set it aside."""

    def require(self, *roles: Role) -> None:
        if self.caller.role not in roles:
            raise ProblemError(
                403, "forbidden", f"role {self.caller.role} may not call {self.tool}"
            )

    async def record(self, outcome: str) -> None:
        """The call in the mission's stream (if about one) and as a metric sample."""
        digest = arguments_hash(self.arguments)
        if self.mission_id is not None and not self.history_full:
            body = RecordMcpCall(tool=self.tool, arguments_hash=digest, outcome=outcome)
            command_id = f"mcp-{uuid.uuid4().hex}"
            command = self.runtime.command(self.mission_id, body, self.caller, command_id)
            await self.runtime.commands.send(command)
        labels = {"tool": self.tool, "caller": self.caller.label, "outcome": outcome}
        await self.runtime.commands.send_metric(
            Metric(
                metric_id=f"mcp-{uuid.uuid4().hex}",
                name="mcp_call",
                value=1,
                labels=labels | {"arguments_hash": digest},
                mission_id=self.mission_id,
                recorded_at=datetime.now(UTC),
            )
        )


def _outcome(problem: ProblemError) -> str:
    return f"{'refused' if problem.status < 500 else 'error'}:{problem.code}"


async def run_tool(
    context: Context[Any, Any, Any],
    tool: str,
    arguments: dict[str, Any],
    work: Callable[[McpCall], Awaitable[T]],
) -> T:
    """`work` as `tool` for the authenticated caller, recorded however it ends; a problem
    becomes a tool error carrying its code and detail (never a traceback)."""
    request = context.request_context.request
    caller: Caller | None = getattr(getattr(request, "state", None), "caller", None)
    if request is None or caller is None:
        raise ToolError("unauthenticated: send Authorization: Bearer <key>")
    call = McpCall(tool, arguments, caller, request.app.state.runtime)
    try:
        result = await work(call)
    except ProblemError as problem:
        await _record(call, _outcome(problem))
        raise ToolError(f"{problem.code}: {problem.detail}") from None
    await _record(call, "ok")
    return result


async def _record(call: McpCall, outcome: str) -> None:
    try:
        await call.record(outcome)
    except ProblemError as problem:  # the broker is down: the call cannot be recorded
        logger.bind(mission_id=call.mission_id).error(
            "MCP call {} by {} not recorded: {}", call.tool, call.caller.label, problem.detail
        )
        raise ToolError(f"{problem.code}: {problem.detail} (the call was not recorded)") from None


async def _about(call: McpCall, mission_id: str) -> dict[str, Any]:
    """The mission `mission_id` (a 404 problem if none); later records name it."""
    row = await missions.existing(call.runtime, mission_id)
    call.mission_id = mission_id
    call.history_full = row["last_sequence"] >= ended_cap(call.runtime.settings.MISSION_MAX_EVENTS)
    return row


def build_mcp_server() -> FastMCP[Any]:
    """The root's MCP server and its tools (the HTTP routes' code, other transport)."""
    server: FastMCP[Any] = FastMCP(
        "velocity-root",
        instructions=INSTRUCTIONS,
        stateless_http=True,
        json_response=True,
        streamable_http_path=PATH,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        log_level="WARNING",
    )

    @server.tool()
    async def create_mission(
        mission: MissionCreate,
        ctx: Context[Any, Any, Any],
        idempotency_key: Annotated[str | None, Field(max_length=200)] = None,
    ) -> MissionAccepted:
        """Open a mission (the fields of POST /missions); retries with the same
        idempotency_key return the same mission. Roles: service, operator."""

        async def work(call: McpCall) -> MissionAccepted:
            call.require(*WRITERS)
            opened, _ = await missions.open_mission(
                call.runtime, call.caller, mission, idempotency_key
            )
            call.mission_id = opened.mission_id
            return opened

        arguments = {"mission": mission.model_dump(mode="json"), "idempotency_key": idempotency_key}
        return await run_tool(ctx, "create_mission", arguments, work)

    @server.tool()
    async def mission_status(mission_id: Id, ctx: Context[Any, Any, Any]) -> MissionPublic:
        """A mission's status, stage, budgets and reviewed output."""

        async def work(call: McpCall) -> MissionPublic:
            call.require(*READERS)
            return missions.public(await _about(call, mission_id))

        return await run_tool(ctx, "mission_status", {"mission_id": mission_id}, work)

    @server.tool()
    async def verified_trail(mission_id: Id, ctx: Context[Any, Any, Any]) -> dict[str, Any]:
        """Every archived event of the mission with its hash link checked, the chain's
        verdict and the stages it went through (what `velocity ledger verify` checks)."""

        async def work(call: McpCall) -> dict[str, Any]:
            call.require(*READERS)
            await _about(call, mission_id)
            return (await trail_of(call.runtime, mission_id)).export()

        return await run_tool(ctx, "verified_trail", {"mission_id": mission_id}, work)

    @server.tool()
    async def reviewer_packet(mission_id: Id, ctx: Context[Any, Any, Any]) -> EvidencePublic:
        """The reviewer packet with its evidence: artifacts by content hash, tasks and
        policy decisions."""

        async def work(call: McpCall) -> EvidencePublic:
            call.require(*READERS)
            await _about(call, mission_id)
            return await missions.mission_evidence(call.runtime, mission_id)

        return await run_tool(ctx, "reviewer_packet", {"mission_id": mission_id}, work)

    @server.tool()
    async def approval_queue(
        ctx: Context[Any, Any, Any],
        pending_limit: Annotated[int, Field(ge=1, le=queries.APPROVAL_PAGE_MAX)] = 100,
        cursor: Annotated[str | None, Field(pattern=queries.CURSOR_PATTERN)] = None,
        decided_limit: Annotated[int, Field(ge=0, le=500)] = 50,
        mission_id: Annotated[str | None, Field(pattern=ID_PATTERN)] = None,
    ) -> ApprovalQueue:
        """Pending writeback approvals oldest first, a page at a time (pass `next_cursor`
        as `cursor` for more), how many wait in all; recent decisions with who and why.
        `mission_id` narrows them to one mission's."""
        page = approvals.QueuePage(pending_limit, cursor, decided_limit, mission_id)

        async def work(call: McpCall) -> ApprovalQueue:
            call.require(*READERS)
            return await approvals.queue(call.runtime, page)

        return await run_tool(ctx, "approval_queue", asdict(page), work)

    @server.tool()
    async def approve_writeback(
        approval_id: Id, reason: Reason, ctx: Context[Any, Any, Any]
    ) -> ApprovalPublic:
        """Approve a proposed CRM writeback (operator keys only), signed as over HTTP."""
        command = ApproveWriteback(writeback_id=approval_id, reason=reason)
        return await _decision(ctx, "approve_writeback", approval_id, reason, "approved", command)

    @server.tool()
    async def reject_writeback(
        approval_id: Id, reason: Reason, ctx: Context[Any, Any, Any]
    ) -> ApprovalPublic:
        """Reject a proposed CRM writeback (operator keys only); the CRM stays untouched."""
        command = RejectWriteback(writeback_id=approval_id, reason=reason)
        return await _decision(ctx, "reject_writeback", approval_id, reason, "rejected", command)

    return server


async def _decision(
    ctx: Context[Any, Any, Any],
    tool: str,
    approval_id: str,
    reason: str,
    decision: str,
    command: ApproveWriteback | RejectWriteback,
) -> ApprovalPublic:
    async def work(call: McpCall) -> ApprovalPublic:
        call.require("operator")
        approval, _ = await approvals.decide_writeback(
            call.runtime, call.caller, approval_id, decision, command
        )
        call.mission_id = approval.mission_id
        return approval

    return await run_tool(ctx, tool, {"approval_id": approval_id, "reason": reason}, work)


def mcp_route(server: FastMCP[Any]) -> Route:
    """The `/mcp` route for the root app (its session manager runs in the app's lifespan)."""
    server.streamable_http_app()  # creates the session manager the route hands requests to
    return Route(PATH, endpoint=StreamableHTTPASGIApp(server.session_manager))
