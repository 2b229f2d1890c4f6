"""What the colony does next, given a mission's file and the event it just saw. Pure.

Each reaction is either commands to send now, or work to do first (a task to run, a
packet to review, a writeback to apply) whose result becomes commands. Command ids are
derived from the event reacted to, so a re-run reaction sends the same ids and the
ledger applies them once; the steps a mission takes once, whatever prompts them, derive
from the mission instead (`ONCE_PER_MISSION`).

A new mission's first reaction takes its first steps at once: it starts planning,
records the plan and starts the first tasks (`first_moves`), where each used to wait for
the event of the one before: two round trips through the ledger fewer for every mission.
The events that used to prompt those steps prompt them again, with the same ids: the
colony that sent them skips them (`MissionFile.sent`), and after a restart the ledger
applies each id once.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from colony_consumers.mission_file import MissionFile
from colony_consumers.planner import plan, ready_tasks, tool_of
from colony_consumers.policy import (
    RESEARCH_TOOLS,
    PolicyContext,
    PolicyDecision,
    evaluate_mcp_tool,
    evaluate_tool,
    mcp_tool_name,
)
from ledger.commands import (
    BeginReview,
    CommandBody,
    CompleteMission,
    CompleteTask,
    FailMission,
    RecordPlan,
    RecordToolDecision,
    RetryTask,
    StartPlanning,
    StartTask,
)
from ledger.events import (
    EventBody,
    MissionPlanned,
    MissionRequested,
    PlanningStarted,
    ReviewerPacketRecorded,
    ReviewStarted,
    TaskFailed,
    TaskRetried,
    TaskStarted,
    TaskSucceeded,
    TaskTimedOut,
    WritebackApproved,
    WritebackExecuted,
    WritebackFailed,
    WritebackRejected,
)
from ledger.name_ids import name_id

ID_NAMESPACE = uuid.UUID("9d3f0a51-7c2e-4b8a-a1d4-5e6f7a8b9c0d")
MAX_ATTEMPTS = 3
SKIPPABLE_TOOLS = frozenset({"web_research", "browser"})


ONCE_PER_MISSION = ("plan/", "policy/", "start/")
"""Steps a mission takes once, whatever event prompts them: its planning, each task's
policy check and first start (a retry is `restart`). Their ids derive from the mission, so
the same step prompted twice (by `first_moves` and again by the event it anticipated, or
by two tasks' successes racing to start a third) is applied once, never rejected."""


def reaction_id(event_id: str, step: str) -> str:
    """The command id of `step` taken in reaction to `event_id`: stable across re-runs."""
    return name_id(ID_NAMESPACE, f"{event_id}/{step}")


def step_id(mission_id: str, event_id: str, step: str) -> str:
    """The command id of `step` prompted by event `event_id` of mission `mission_id`."""
    return reaction_id(mission_id if step.startswith(ONCE_PER_MISSION) else event_id, step)


@dataclass(frozen=True)
class Send:
    """Commands to send now, each with its step name (for its derived id)."""

    commands: list[tuple[str, CommandBody]]


@dataclass(frozen=True)
class RunTask:
    task_id: str
    tool: str


@dataclass(frozen=True)
class Review:
    pass


@dataclass(frozen=True)
class ApplyWriteback:
    writeback_id: str


@dataclass(frozen=True)
class ProposeWritebacks:
    """A reviewed CRM mission: propose its writebacks (the executor computes them)."""


Reaction = Send | RunTask | Review | ApplyWriteback | ProposeWritebacks


def policy_context(
    file: MissionFile,
    environment: str,
    research: bool,
    gate: bool,
    mcp_tool: str | None = None,
) -> PolicyContext:
    """What the guard needs to know; `mcp_tool` is the MCP tool research goes through."""
    request = file.request
    assert request is not None
    return PolicyContext(
        environment=environment,
        mission_type=request.mission_type,
        mode=request.mode,
        autonomous_research=research,
        writeback_gate_passed=gate,
        mcp_tool=mcp_tool,
    )


def tool_decision(task_id: str, tool: str, decision: PolicyDecision) -> RecordToolDecision:
    return RecordToolDecision(
        task_id=task_id,
        tool=tool,
        decision=decision.decision,
        rule_id=decision.rule_id,
        reason=decision.reason,
    )


def tool_decisions(
    context: PolicyContext, task_id: str, tool: str
) -> list[tuple[str, RecordToolDecision]]:
    """The guard's decisions on a task's tool, each with its step: the tool's own, then,
    when it is allowed and its research goes through an MCP server, the MCP tool's."""
    decision = evaluate_tool(context, tool)
    decisions = [(f"policy/{task_id}", tool_decision(task_id, tool, decision))]
    if decision.allowed and context.mcp_tool is not None and tool in RESEARCH_TOOLS:
        through = evaluate_mcp_tool(context, tool)
        recorded = tool_decision(task_id, mcp_tool_name(context.mcp_tool), through)
        decisions.append((f"policy/{task_id}/mcp", recorded))
    return decisions


def start_ready(file: MissionFile, context: PolicyContext, workers: int) -> Send | None:
    """Start the tasks that are ready, or begin review when every task has succeeded."""
    assert file.request is not None
    statuses = {task_id: task.status for task_id, task in file.state.tasks.items()}
    if statuses and all(status == "succeeded" for status in statuses.values()):
        return Send([("begin_review", BeginReview(reviewer="colony:reviewer"))])
    commands = task_starts(file.request.mission_type, statuses, context, workers)
    return Send(commands) if commands else None


def first_moves(file: MissionFile, context: PolicyContext, workers: int) -> Send:
    """A new mission's first steps at once: start planning, record the plan, start the
    tasks ready in it (what the events of each step would have prompted, in order)."""
    assert file.request is not None
    tasks = plan(file.request.mission_type)
    planned = {task.task_id: "planned" for task in tasks}
    return Send(
        [
            ("plan/start", StartPlanning(planner="colony:planner")),
            ("plan/record", RecordPlan(tasks=tasks, rationale="standard plan")),
            *task_starts(file.request.mission_type, planned, context, workers),
        ]
    )


def task_starts(
    mission_type: str, statuses: Mapping[str, str], context: PolicyContext, workers: int
) -> list[tuple[str, CommandBody]]:
    """Start the tasks that are ready, up to `workers` running at once (each tool checked
    by policy, and the MCP tool its research calls). A denied MCP tool fails the mission
    even for a skippable tool: every research task calls that one tool, so skipping would
    only hide the denial."""
    running = sum(1 for status in statuses.values() if status == "running")
    ready = ready_tasks(mission_type, statuses)[: max(workers - running, 0)]
    commands: list[tuple[str, CommandBody]] = []
    for task_id in ready:
        decisions = tool_decisions(context, task_id, tool_of(mission_type, task_id))
        commands.extend(decisions)
        last = decisions[-1][1]
        if last.decision == "allowed" or last.tool in SKIPPABLE_TOOLS:
            commands.append(
                (f"start/{task_id}", StartTask(task_id=task_id, worker="colony:worker"))
            )
        else:
            reason = f"policy denied {last.tool} ({last.rule_id}): {last.reason}"
            commands.append(("fail/policy", FailMission(reason=reason)))
            break
    return commands


def react(
    file: MissionFile, body: EventBody, context: PolicyContext | None, workers: int = 1
) -> Reaction | None:
    """The colony's next move after `body` (None: nothing to do); `workers` is
    MAX_WORKERS_PER_MISSION."""
    if file.state.terminal:
        return None
    if isinstance(body, MissionRequested) and context is not None:
        return first_moves(file, context, workers)
    if isinstance(body, PlanningStarted) and file.request is not None:
        tasks = plan(file.request.mission_type)
        return Send([("plan/record", RecordPlan(tasks=tasks, rationale="standard plan"))])
    if context is not None and isinstance(body, MissionPlanned | TaskSucceeded | TaskRetried):
        if isinstance(body, TaskRetried):
            return Send([("restart", StartTask(task_id=body.task_id, worker="colony:worker"))])
        return start_ready(file, context, workers)
    if isinstance(body, TaskStarted) and file.request is not None:
        tool = tool_of(file.request.mission_type, body.task_id)
        if any(d.startswith(f"{tool}:") for d in file.denials) and tool in SKIPPABLE_TOOLS:
            skipped = CompleteTask(
                task_id=body.task_id,
                summary=f"skipped: {tool} denied by policy",
                tokens_used=0,
                duration_ms=0,
            )
            return Send([("skip", skipped)])
        return RunTask(body.task_id, tool)
    if isinstance(body, TaskFailed | TaskTimedOut):
        retryable = getattr(body, "retryable", True)
        if retryable and body.attempt < MAX_ATTEMPTS:
            return Send([("retry", RetryTask(task_id=body.task_id))])
        failure = file.failures[-1] if file.failures else body.task_id
        return Send([("fail/task", FailMission(reason=f"task failed: {failure}"))])
    if isinstance(body, ReviewStarted):
        return Review()
    if isinstance(body, ReviewerPacketRecorded):
        return after_review(file, body)
    if isinstance(body, WritebackApproved):
        return ApplyWriteback(body.writeback_id)
    if isinstance(body, WritebackExecuted | WritebackRejected | WritebackFailed):
        return Send([("complete", CompleteMission(output=file.outputs.get("review", "")))])
    return None


def after_review(file: MissionFile, body: ReviewerPacketRecorded) -> Reaction:
    assert file.request is not None
    if body.verdict == "fail":
        return Send(
            [("fail/review", FailMission(reason="review failed: output not supported by evidence"))]
        )
    if file.request.mission_type == "crm":
        return ProposeWritebacks()  # the policy guard records a denial for dry runs
    return Send([("complete", CompleteMission(output=body.output))])
