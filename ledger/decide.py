"""`decide`: the mission state machine's judgement of one command. Pure, never raises.

Returns the event bodies that follow from the command: [] for a command already
applied (idempotency), a CommandRejected with a machine-readable reason for an illegal
one (docs/ledger.md lists the reasons). Nothing is ever silently dropped. A command that
claims an operator must carry the root's signature (ledger/authority.py), checked here
before anything else, so an unproven approval is a rejection in the mission's stream.
"""

from __future__ import annotations

from functools import singledispatch

from ledger.authority import OperatorAuthority, claims_operator
from ledger.commands import (
    ApproveWriteback,
    BeginReview,
    CancelMission,
    Command,
    CommandBody,
    CompleteMission,
    CompleteTask,
    FailMission,
    FailTask,
    ProposeWriteback,
    QueueMission,
    RecordArtifact,
    RecordArtifacts,
    RecordBudgetUse,
    RecordMcpCall,
    RecordPlan,
    RecordReview,
    RecordToolDecision,
    RecordWritebackResult,
    RejectWriteback,
    ReplayMission,
    RequestMission,
    RetryTask,
    StartPlanning,
    StartTask,
    TimeOutMission,
    TimeOutTask,
)
from ledger.events import (
    ApprovalRequested,
    ArtifactRecorded,
    ArtifactsRecorded,
    BudgetExceeded,
    BudgetUsed,
    CommandRejected,
    EventBody,
    McpCallRecorded,
    MissionCancelled,
    MissionCompleted,
    MissionFailed,
    MissionPlanned,
    MissionQueued,
    MissionReplayRequested,
    MissionRequested,
    MissionTimedOut,
    PlanningStarted,
    ReviewerPacketRecorded,
    ReviewStarted,
    TaskFailed,
    TaskRetried,
    TaskStarted,
    TaskSucceeded,
    TaskTimedOut,
    ToolRequestAllowed,
    ToolRequestDenied,
    WritebackApproved,
    WritebackExecuted,
    WritebackFailed,
    WritebackProposed,
    WritebackRejected,
)
from ledger.release import RELEASE_COMMANDS, decide_release
from ledger.state import WORKING_STATUSES, MissionState, refusal_key

Decision = list[EventBody]


def decide(state: MissionState, command: Command, authority: OperatorAuthority) -> Decision:
    """The events `command` produces against `state`; `authority` checks operator proofs."""
    if command.meta.command_id in state.applied_commands:
        return []
    unproven = authority.refusal(command)
    if unproven is not None:
        if refusal_key(command.meta.command_id, unproven[1]) in state.refused_unproven:
            return []  # the same refusal again (a redelivery): recorded once
        return [reject(command, *unproven)]
    if isinstance(command.body, RELEASE_COMMANDS):
        decided = decide_release(state, command)
        return decided if isinstance(decided, list) else [reject(command, *decided)]
    if not state.exists and not isinstance(command.body, RequestMission):
        return [reject(command, "unknown_mission", "no mission was requested under this id")]
    if state.terminal and not isinstance(command.body, ReplayMission | RecordMcpCall):
        return [reject(command, "mission_terminal", f"mission is {state.status}")]
    return handle(command.body, state, command)


def reject(command: Command, reason: str, detail: str) -> CommandRejected:
    """A rejection of `command` for `reason`, recorded in the mission's ledger."""
    return CommandRejected(
        command_id=command.meta.command_id,
        command_type=command.command_type,
        reason=reason,
        detail=detail,
    )


def _wrong_status(command: Command, state: MissionState, expected: str) -> Decision:
    return [reject(command, "wrong_status", f"mission is {state.status}, needs {expected}")]


def _operator_only(command: Command, action: str) -> Decision | None:
    """A rejection unless an operator issued `command` (its proof was checked in `decide`)."""
    if claims_operator(command):
        return None
    return [reject(command, "operator_required", f"only an operator may {action}")]


@singledispatch
def handle(body: CommandBody, state: MissionState, command: Command) -> Decision:
    """Command-type specific part of `decide`."""
    return [reject(command, "unknown_command", f"no handler for {type(body).__name__}")]


@handle.register
def _request(body: RequestMission, state: MissionState, command: Command) -> Decision:
    if state.exists:
        return [reject(command, "mission_exists", "the mission was already requested")]
    return [MissionRequested(**body.model_dump())]


@handle.register
def _queue(body: QueueMission, state: MissionState, command: Command) -> Decision:
    if state.status != "requested":
        return _wrong_status(command, state, "requested")
    return [MissionQueued(position=body.position, limit=body.limit)]


@handle.register
def _start_planning(body: StartPlanning, state: MissionState, command: Command) -> Decision:
    if state.status != "requested":
        return _wrong_status(command, state, "requested")
    return [PlanningStarted(planner=body.planner)]


@handle.register
def _plan(body: RecordPlan, state: MissionState, command: Command) -> Decision:
    if state.status != "planning":
        return _wrong_status(command, state, "planning")
    ids = [task.task_id for task in body.tasks]
    if len(set(ids)) != len(ids):
        return [reject(command, "invalid_plan", "task ids repeat")]
    unknown = {d for task in body.tasks for d in task.depends_on} - set(ids)
    if unknown:
        return [reject(command, "invalid_plan", f"depends on unknown tasks {sorted(unknown)}")]
    return [MissionPlanned(tasks=body.tasks, rationale=body.rationale)]


def _task_check(
    state: MissionState, command: Command, task_id: str, allowed: set[str]
) -> Decision | None:
    """A rejection if the mission is not running or the task is not in `allowed`."""
    if state.status != "running":
        return _wrong_status(command, state, "running")
    task = state.tasks.get(task_id)
    if task is None:
        return [reject(command, "unknown_task", f"no task {task_id} in the plan")]
    if task.status not in allowed:
        return [reject(command, "wrong_task_status", f"task {task_id} is {task.status}")]
    return None


@handle.register
def _start_task(body: StartTask, state: MissionState, command: Command) -> Decision:
    refused = _task_check(state, command, body.task_id, {"planned"})
    if refused:
        return refused
    attempt = state.tasks[body.task_id].attempt + 1
    return [TaskStarted(task_id=body.task_id, worker=body.worker, attempt=attempt)]


@handle.register
def _complete_task(body: CompleteTask, state: MissionState, command: Command) -> Decision:
    refused = _task_check(state, command, body.task_id, {"running"})
    if refused:
        return refused
    succeeded = TaskSucceeded(**body.model_dump())
    return [succeeded, *_budget_breach(state, body.tokens_used, body.duration_ms)]


def _budget_breach(state: MissionState, tokens: int, time_ms: int) -> Decision:
    """BudgetExceeded and MissionFailed if `tokens`/`time_ms` more would break a budget."""
    for budget, limit, used in (
        ("tokens", state.token_budget, state.tokens_used + tokens),
        ("time_ms", state.time_budget_ms, state.time_used_ms + time_ms),
    ):
        if used > limit:
            return [
                BudgetExceeded(budget=budget, limit=limit, used=used),
                MissionFailed(reason=f"budget_exceeded: {budget}", stage=state.stage),
            ]
    return []


@handle.register
def _fail_task(body: FailTask, state: MissionState, command: Command) -> Decision:
    refused = _task_check(state, command, body.task_id, {"running"})
    if refused:
        return refused
    attempt = state.tasks[body.task_id].attempt
    return [TaskFailed(**body.model_dump(), attempt=attempt)]


@handle.register
def _retry_task(body: RetryTask, state: MissionState, command: Command) -> Decision:
    refused = _task_check(state, command, body.task_id, {"failed", "timed_out"})
    if refused:
        return refused
    return [TaskRetried(task_id=body.task_id, attempt=state.tasks[body.task_id].attempt)]


@handle.register
def _time_out_task(body: TimeOutTask, state: MissionState, command: Command) -> Decision:
    refused = _task_check(state, command, body.task_id, {"running"})
    if refused:
        return refused
    attempt = state.tasks[body.task_id].attempt
    return [TaskTimedOut(task_id=body.task_id, timeout_ms=body.timeout_ms, attempt=attempt)]


@handle.register
def _mcp_call(body: RecordMcpCall, state: MissionState, command: Command) -> Decision:
    return [McpCallRecorded(**body.model_dump())]


@handle.register
def _tool(body: RecordToolDecision, state: MissionState, command: Command) -> Decision:
    if state.status not in WORKING_STATUSES:
        return _wrong_status(command, state, "a working status")
    fields = body.model_dump(exclude={"decision"})
    if body.decision == "allowed":
        return [ToolRequestAllowed(**fields)]
    return [ToolRequestDenied(**fields)]


@handle.register
def _artifact(body: RecordArtifact, state: MissionState, command: Command) -> Decision:
    if state.status not in WORKING_STATUSES:
        return _wrong_status(command, state, "a working status")
    return [ArtifactRecorded(**body.model_dump())]


@handle.register
def _artifacts(body: RecordArtifacts, state: MissionState, command: Command) -> Decision:
    if state.status not in WORKING_STATUSES:
        return _wrong_status(command, state, "a working status")
    return [ArtifactsRecorded(artifacts=body.artifacts)]


@handle.register
def _budget(body: RecordBudgetUse, state: MissionState, command: Command) -> Decision:
    used = BudgetUsed(
        tokens=body.tokens,
        time_ms=body.time_ms,
        tokens_total=state.tokens_used + body.tokens,
        time_total_ms=state.time_used_ms + body.time_ms,
    )
    return [used, *_budget_breach(state, body.tokens, body.time_ms)]


@handle.register
def _begin_review(body: BeginReview, state: MissionState, command: Command) -> Decision:
    if state.status != "running":
        return _wrong_status(command, state, "running")
    unfinished = sorted(t for t, s in state.tasks.items() if s.status != "succeeded")
    if unfinished:
        return [reject(command, "tasks_unfinished", f"tasks not succeeded: {unfinished}")]
    return [ReviewStarted(reviewer=body.reviewer)]


@handle.register
def _review(body: RecordReview, state: MissionState, command: Command) -> Decision:
    if state.status != "in_review":
        return _wrong_status(command, state, "in_review")
    return [ReviewerPacketRecorded(**body.model_dump())]


@handle.register
def _propose(body: ProposeWriteback, state: MissionState, command: Command) -> Decision:
    if state.mode == "dry_run":
        return [reject(command, "dry_run", "dry-run missions never write")]
    if state.status not in ("in_review", "awaiting_approval"):
        return _wrong_status(command, state, "in_review")
    if body.writeback_id in state.writebacks:
        return [reject(command, "writeback_exists", f"{body.writeback_id} already proposed")]
    summary = ", ".join(f"{k}={v}" for k, v in sorted(body.changes.items()))
    return [
        WritebackProposed(**body.model_dump()),
        ApprovalRequested(
            writeback_id=body.writeback_id, summary=f"{body.target} {body.record_ref}: {summary}"
        ),
    ]


def _decision_check(state: MissionState, command: Command, writeback_id: str) -> Decision | None:
    refused = _operator_only(command, "decide a writeback")
    if refused:
        return refused
    writeback = state.writebacks.get(writeback_id)
    if writeback is None:
        return [reject(command, "unknown_writeback", f"no writeback {writeback_id}")]
    if writeback.status != "awaiting_approval":
        return [reject(command, "not_pending", f"writeback {writeback_id} is {writeback.status}")]
    return None


@handle.register(ApproveWriteback)
@handle.register(RejectWriteback)
def _operator_decision(
    body: ApproveWriteback | RejectWriteback, state: MissionState, command: Command
) -> Decision:
    refused = _decision_check(state, command, body.writeback_id)
    if refused:
        return refused
    event = WritebackApproved if isinstance(body, ApproveWriteback) else WritebackRejected
    return [
        event(writeback_id=body.writeback_id, decided_by=command.meta.actor, reason=body.reason)
    ]


@handle.register
def _result(body: RecordWritebackResult, state: MissionState, command: Command) -> Decision:
    writeback = state.writebacks.get(body.writeback_id)
    if writeback is None:
        return [reject(command, "unknown_writeback", f"no writeback {body.writeback_id}")]
    if writeback.status != "approved":
        return [
            reject(
                command,
                "approval_missing",
                f"writeback {body.writeback_id} is {writeback.status}, not approved",
            )
        ]
    if body.succeeded:
        return [WritebackExecuted(writeback_id=body.writeback_id, detail=body.detail)]
    return [WritebackFailed(writeback_id=body.writeback_id, detail=body.detail)]


@handle.register
def _complete(body: CompleteMission, state: MissionState, command: Command) -> Decision:
    if state.status != "in_review":
        return _wrong_status(command, state, "in_review")
    if state.verdict is None:
        return [reject(command, "review_missing", "no reviewer packet recorded")]
    if state.verdict == "fail":
        return [reject(command, "review_failed", "the reviewer's verdict is fail")]
    if state.open_writebacks:
        return [reject(command, "writebacks_open", f"open: {sorted(state.open_writebacks)}")]
    return [MissionCompleted(output=body.output, verdict=state.verdict)]


@handle.register
def _fail(body: FailMission, state: MissionState, command: Command) -> Decision:
    return [MissionFailed(reason=body.reason, stage=state.stage)]


@handle.register
def _cancel(body: CancelMission, state: MissionState, command: Command) -> Decision:
    return _operator_only(command, "cancel a mission") or [
        MissionCancelled(reason=body.reason, stage=state.stage)
    ]


@handle.register
def _time_out(body: TimeOutMission, state: MissionState, command: Command) -> Decision:
    since = state.status_since or command.meta.issued_at
    return [MissionTimedOut(stage=state.stage, timeout_ms=body.timeout_ms, stuck_since=since)]


@handle.register
def _replay(body: ReplayMission, state: MissionState, command: Command) -> Decision:
    refused = _operator_only(command, "replay a mission")
    if refused:
        return refused
    if not state.terminal:
        return [reject(command, "mission_not_terminal", "fail or cancel the mission first")]
    return [MissionReplayRequested(new_mission_id=body.new_mission_id, reason=body.reason)]
