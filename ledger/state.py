"""MissionState and `evolve`: the fold of a mission's events into what is true now.

`evolve` is pure and total: every recorded event moves the stream position, hash and
applied command ids forward, whatever its type, so replaying any prefix of a stream
gives exactly the state the decider had at that point.
"""

from __future__ import annotations

from datetime import datetime
from functools import singledispatch
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ledger.events import (
    GENESIS_HASH,
    ApprovalRequested,
    ArtifactRecorded,
    ArtifactsRecorded,
    BudgetUsed,
    CommandRejected,
    EventBody,
    GateCheckRecorded,
    GateRunCompleted,
    GateRunStarted,
    MissionCancelled,
    MissionCompleted,
    MissionFailed,
    MissionPlanned,
    MissionQueued,
    MissionReplayRequested,
    MissionRequested,
    MissionTimedOut,
    PlanningStarted,
    RecordedEvent,
    ReviewerPacketRecorded,
    ReviewStarted,
    RolloutAdvanced,
    RolloutRolledBack,
    TaskFailed,
    TaskRetried,
    TaskStarted,
    TaskSucceeded,
    TaskTimedOut,
    WritebackApproved,
    WritebackExecuted,
    WritebackFailed,
    WritebackProposed,
    WritebackRejected,
    recorded_artifacts,
)

MissionStatus = Literal[
    "new",
    "requested",
    "planning",
    "running",
    "in_review",
    "awaiting_approval",
    "completed",
    "failed",
    "cancelled",
    "timed_out",
]
TaskStatus = Literal["planned", "running", "succeeded", "failed", "timed_out"]
WritebackStatus = Literal[
    "awaiting_approval", "approved", "rejected", "executed", "execution_failed"
]
TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled", "timed_out"})
WORKING_STATUSES: frozenset[str] = frozenset(
    {"planning", "running", "in_review", "awaiting_approval"}
)
"""Statuses in which the colony works a mission: tool decisions and artifacts are taken."""
OPEN_STATUSES: tuple[str, ...] = ("requested", *sorted(WORKING_STATUSES))
"""Statuses a mission in the views can hold before it ends (every one but the terminal
ones). Queries name them rather than `NOT IN` the terminal ones, which no index serves:
that read every mission ever finished."""
OPEN_WRITEBACK: frozenset[str] = frozenset({"awaiting_approval", "approved"})
UNPROVEN = "operator_unproven"


class TaskState(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: str
    status: TaskStatus = "planned"
    attempt: int = 0


class WritebackState(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: WritebackStatus = "awaiting_approval"
    approved_by: str | None = None


class ReleaseState(BaseModel):
    """What a release stream holds (ledger/release.py): a gate run's progress, or an
    environment's rollout step."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["gates", "rollout"]
    open: bool = False
    checks: int = 0
    failed: int = 0
    step: int = 1


class MissionState(BaseModel):
    """Everything the decider needs to judge the next command of one mission."""

    model_config = ConfigDict(frozen=True)

    mission_id: str
    status: MissionStatus = "new"
    stage: str = "none"
    status_since: datetime | None = None
    sequence: int = 0
    last_hash: str = GENESIS_HASH
    mission_type: str | None = None
    mode: str | None = None
    token_budget: int = 0
    time_budget_ms: int = 0
    tokens_used: int = 0
    time_used_ms: int = 0
    tasks: dict[str, TaskState] = {}
    writebacks: dict[str, WritebackState] = {}
    artifacts: frozenset[str] = frozenset()
    verdict: str | None = None
    replayed_as: tuple[str, ...] = ()
    applied_commands: frozenset[str] = frozenset()
    refused_unproven: frozenset[str] = frozenset()
    """Refusals for lacking operator proof (`refusal_key`): their commands are not applied
    (a signed command under the id still is), but the same refusal of the same id — a
    redelivery after the decider failed stop — is not recorded twice."""
    release: ReleaseState | None = None
    """Set on release streams (gate runs, rollouts) instead of the mission fields."""

    @property
    def exists(self) -> bool:
        return self.status != "new"

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def open_writebacks(self) -> list[str]:
        return [w for w, s in self.writebacks.items() if s.status in OPEN_WRITEBACK]


Changes = dict[str, Any]


def evolve(state: MissionState, event: RecordedEvent) -> MissionState:
    """The state after `event`: position, hash and applied command ids, then the body.

    One copy per event: `apply` returns the body's changes rather than a new state,
    which keeps the decider's hot path to a single model copy.
    """
    position: Changes = {"sequence": event.meta.sequence, "last_hash": event.meta.hash}
    if uses_up_command_id(event.body):
        position["applied_commands"] = state.applied_commands | {event.meta.causation_id}
    else:
        detail = str(getattr(event.body, "detail", ""))
        refused = refusal_key(event.meta.causation_id, detail)
        position["refused_unproven"] = state.refused_unproven | {refused}
    changes = position | apply(event.body, state, event.meta.occurred_at)
    moved = status_change(event.body)
    if moved is not None:
        changes |= {"status": moved[0], "stage": moved[1], "status_since": event.meta.occurred_at}
    return state.model_copy(update=changes)


def refusal_key(command_id: str, detail: str) -> str:
    return f"{command_id} {detail}"


def uses_up_command_id(body: EventBody) -> bool:
    """Whether the command that caused `body` counts as applied (its id deduplicated).

    Not when it was refused for lacking operator proof: otherwise anyone who can produce
    to the commands topic could squat the id the root derives for an operator's decision
    and so block the genuine, signed command.
    """
    return not (isinstance(body, CommandRejected) and body.reason == UNPROVEN)


STATUS_AFTER: dict[type[EventBody], tuple[MissionStatus, str]] = {
    MissionRequested: ("requested", "intake"),
    MissionQueued: ("requested", "queued"),
    PlanningStarted: ("planning", "planning"),
    MissionPlanned: ("running", "tasks"),
    ReviewStarted: ("in_review", "review"),
    ApprovalRequested: ("awaiting_approval", "approval"),
    MissionCompleted: ("completed", "done"),
}
STUCK_IN_STAGE: dict[type[EventBody], MissionStatus] = {
    MissionFailed: "failed",
    MissionCancelled: "cancelled",
    MissionTimedOut: "timed_out",
}

ENDING_EVENTS: frozenset[str] = frozenset(
    body.__name__
    for body, status in [*((b, s) for b, (s, _) in STATUS_AFTER.items()), *STUCK_IN_STAGE.items()]
    if status in TERMINAL_STATUSES
)
"""The event types after which a mission is over: a reader skipping ended missions
(the colony taking a partition) knows them by name, before decoding anything."""


def status_change(body: EventBody) -> tuple[MissionStatus, str] | None:
    """The (status, stage) an event moves its mission to, if it moves it.

    Terminal failures keep the stage the mission was in, which the event records.
    The missions projection uses this too, so the view and the decider agree.
    """
    if type(body) in STATUS_AFTER:
        return STATUS_AFTER[type(body)]
    if type(body) in STUCK_IN_STAGE:
        return STUCK_IN_STAGE[type(body)], str(getattr(body, "stage", "none"))
    return None


def _task(state: MissionState, task_id: str, **changes: object) -> Changes:
    task = state.tasks.get(task_id) or TaskState(kind="unknown")
    return {"tasks": {**state.tasks, task_id: task.model_copy(update=changes)}}


def _writeback(state: MissionState, writeback_id: str, **changes: object) -> Changes:
    current = state.writebacks.get(writeback_id) or WritebackState()
    writebacks = {**state.writebacks, writeback_id: current.model_copy(update=changes)}
    if state.status == "awaiting_approval" and not any(
        w.status == "awaiting_approval" for w in writebacks.values()
    ):
        return {"writebacks": writebacks, "status": "in_review", "stage": "writeback"}
    return {"writebacks": writebacks}


@singledispatch
def apply(body: EventBody, state: MissionState, at: datetime) -> Changes:
    """Event-type specific part of `evolve`: the fields the event changes."""
    return {}


@apply.register
def _requested(body: MissionRequested, state: MissionState, at: datetime) -> Changes:
    return {
        "mission_type": body.mission_type,
        "mode": body.mode,
        "token_budget": body.token_budget,
        "time_budget_ms": body.time_budget_ms,
    }


@apply.register
def _planned(body: MissionPlanned, state: MissionState, at: datetime) -> Changes:
    return {"tasks": {task.task_id: TaskState(kind=task.kind) for task in body.tasks}}


@apply.register
def _task_started(body: TaskStarted, state: MissionState, at: datetime) -> Changes:
    return _task(state, body.task_id, status="running", attempt=body.attempt)


@apply.register
def _task_succeeded(body: TaskSucceeded, state: MissionState, at: datetime) -> Changes:
    return _task(state, body.task_id, status="succeeded") | {
        "tokens_used": state.tokens_used + body.tokens_used,
        "time_used_ms": state.time_used_ms + body.duration_ms,
        "artifacts": state.artifacts | set(body.artifact_hashes),
    }


@apply.register
def _task_failed(body: TaskFailed, state: MissionState, at: datetime) -> Changes:
    return _task(state, body.task_id, status="failed")


@apply.register
def _task_timed_out(body: TaskTimedOut, state: MissionState, at: datetime) -> Changes:
    return _task(state, body.task_id, status="timed_out")


@apply.register
def _task_retried(body: TaskRetried, state: MissionState, at: datetime) -> Changes:
    return _task(state, body.task_id, status="planned")


@apply.register
def _artifacts(
    body: ArtifactRecorded | ArtifactsRecorded, state: MissionState, at: datetime
) -> Changes:
    return {"artifacts": state.artifacts | {a.content_hash for a in recorded_artifacts(body)}}


@apply.register
def _budget(body: BudgetUsed, state: MissionState, at: datetime) -> Changes:
    return {"tokens_used": body.tokens_total, "time_used_ms": body.time_total_ms}


@apply.register
def _packet(body: ReviewerPacketRecorded, state: MissionState, at: datetime) -> Changes:
    return {"verdict": body.verdict}


@apply.register
def _proposed(body: WritebackProposed, state: MissionState, at: datetime) -> Changes:
    return _writeback(state, body.writeback_id, status="awaiting_approval")


@apply.register
def _approved(body: WritebackApproved, state: MissionState, at: datetime) -> Changes:
    return _writeback(state, body.writeback_id, status="approved", approved_by=body.decided_by)


@apply.register
def _rejected_wb(body: WritebackRejected, state: MissionState, at: datetime) -> Changes:
    return _writeback(state, body.writeback_id, status="rejected")


@apply.register
def _executed(body: WritebackExecuted, state: MissionState, at: datetime) -> Changes:
    return _writeback(state, body.writeback_id, status="executed")


@apply.register
def _execution_failed(body: WritebackFailed, state: MissionState, at: datetime) -> Changes:
    return _writeback(state, body.writeback_id, status="execution_failed")


@apply.register
def _replayed(body: MissionReplayRequested, state: MissionState, at: datetime) -> Changes:
    return {"replayed_as": (*state.replayed_as, body.new_mission_id)}


def fold(mission_id: str, events: list[RecordedEvent]) -> MissionState:
    """The state after all of `events`, starting from a new mission."""
    state = MissionState(mission_id=mission_id)
    for event in events:
        state = evolve(state, event)
    return state


@apply.register
def _gate_run_started(body: GateRunStarted, state: MissionState, at: datetime) -> Changes:
    return {"release": ReleaseState(kind="gates", open=True)}


@apply.register
def _gate_check(body: GateCheckRecorded, state: MissionState, at: datetime) -> Changes:
    run = state.release or ReleaseState(kind="gates")
    failed = run.failed + (0 if body.passed else 1)
    return {"release": run.model_copy(update={"checks": run.checks + 1, "failed": failed})}


@apply.register
def _gate_run_completed(body: GateRunCompleted, state: MissionState, at: datetime) -> Changes:
    run = state.release or ReleaseState(kind="gates")
    return {"release": run.model_copy(update={"open": False})}


@apply.register
def _rollout_moved(
    body: RolloutAdvanced | RolloutRolledBack, state: MissionState, at: datetime
) -> Changes:
    return {"release": ReleaseState(kind="rollout", step=body.to_step)}
