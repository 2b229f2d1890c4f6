"""The mission state machine, command by command, as an auditor would read its rules."""

from __future__ import annotations

from typing import get_args

from ledger.authority import OperatorSigner, new_key_pair
from ledger.chain import verify_link
from ledger.commands import (
    ApproveWriteback,
    BeginReview,
    CancelMission,
    CompleteMission,
    CompleteTask,
    FailMission,
    FailTask,
    PlannedTask,
    ProposeWriteback,
    RecordArtifact,
    RecordArtifacts,
    RecordBudgetUse,
    RecordPlan,
    RecordToolDecision,
    RecordWritebackResult,
    RejectWriteback,
    ReplayMission,
    RetryTask,
    StartPlanning,
    StartTask,
    StoredArtifact,
    TimeOutMission,
    TimeOutTask,
)
from ledger.events import (
    GENESIS_HASH,
    ArtifactsRecorded,
    CommandRejected,
    EventBody,
    MissionFailed,
    MissionTimedOut,
    TaskStarted,
    ToolRequestDenied,
    WritebackApproved,
)
from ledger.state import OPEN_STATUSES, TERMINAL_STATUSES, MissionStatus, fold
from tests.factories import command, request_body
from tests.unit.ledger.scenario import OPERATOR, Mission


def rejection(bodies: list[EventBody]) -> str:
    assert len(bodies) == 1 and isinstance(bodies[0], CommandRejected), bodies
    return bodies[0].reason


def test_a_request_opens_the_mission_at_sequence_one_on_the_genesis_hash() -> None:
    mission = Mission()
    assert mission.types(mission.do(request_body())) == ["MissionRequested"]
    first = mission.log[0]
    assert first.meta.sequence == 1
    assert first.meta.prev_hash == GENESIS_HASH
    assert verify_link(GENESIS_HASH, first)
    assert mission.state.status == "requested"


def test_a_redelivered_command_appends_nothing() -> None:
    mission = Mission()
    mission.do(request_body(), command_id="c-1")
    assert mission.do(request_body(), command_id="c-1") == []
    assert mission.state.sequence == 1


def test_the_same_command_always_yields_the_same_event_ids() -> None:
    one, two = Mission(), Mission()
    two.id = one.id
    two.state = two.state.model_copy(update={"mission_id": one.id})
    one.do(request_body(), command_id="c-1")
    two.do(request_body(), command_id="c-1")
    assert one.log[0].meta.event_id == two.log[0].meta.event_id


def test_a_second_request_for_the_same_mission_is_rejected_and_recorded() -> None:
    mission = Mission().requested()
    assert rejection(mission.do(request_body())) == "mission_exists"
    assert mission.state.sequence == 2


def test_commands_for_a_mission_never_requested_are_rejected() -> None:
    assert rejection(Mission().do(StartPlanning(planner="p"))) == "unknown_mission"


def test_a_crm_mission_runs_through_approval_to_completion() -> None:
    mission = Mission().awaiting_approval()
    assert mission.state.status == "awaiting_approval"
    approved = mission.do(ApproveWriteback(writeback_id="w1", reason="looks right"), OPERATOR)
    assert mission.types(approved) == ["WritebackApproved"]
    assert isinstance(approved[0], WritebackApproved)
    assert approved[0].decided_by == OPERATOR
    executed = mission.do(RecordWritebackResult(writeback_id="w1", succeeded=True, detail="ok"))
    assert mission.types(executed) == ["WritebackExecuted"]
    completed = mission.do(CompleteMission(output="brief"))
    assert mission.types(completed) == ["MissionCompleted"]
    final = mission.state  # a new name: mypy holds mission.state.status at "awaiting_approval"
    assert final.status == "completed"
    assert fold(mission.id, mission.log) == mission.state


def test_approving_twice_is_rejected_as_not_pending() -> None:
    mission = Mission().awaiting_approval()
    mission.do(ApproveWriteback(writeback_id="w1", reason="ok"), OPERATOR)
    again = mission.do(ApproveWriteback(writeback_id="w1", reason="ok"), OPERATOR)
    assert rejection(again) == "not_pending"


def test_only_an_operator_may_approve() -> None:
    mission = Mission().awaiting_approval()
    refused = mission.do(ApproveWriteback(writeback_id="w1", reason="ok"), "service:local-service")
    assert rejection(refused) == "operator_required"


def test_an_unsigned_operator_approval_is_rejected_and_the_writeback_stays_pending() -> None:
    mission = Mission().awaiting_approval()
    forged = command(
        mission.id, ApproveWriteback(writeback_id="w1", reason="ok"), actor=OPERATOR, signed=False
    )
    assert rejection(mission.apply(forged)) == "operator_unproven"
    assert mission.state.writebacks["w1"].status == "awaiting_approval"


def test_a_redelivered_forgery_is_recorded_once_and_the_signed_command_still_applies() -> None:
    """A decider that fails stop re-reads the commands after its last commit: a forged
    approval among them is refused once; the operator's signed one under the same id is
    not blocked by it."""
    mission = Mission().awaiting_approval()
    approval = ApproveWriteback(writeback_id="w1", reason="ok")
    forged = command(mission.id, approval, command_id="c-1", actor=OPERATOR, signed=False)
    assert rejection(mission.apply(forged)) == "operator_unproven"
    assert mission.apply(forged) == []
    signed = command(mission.id, approval, command_id="c-1", actor=OPERATOR)
    assert mission.types(mission.apply(signed)) == ["WritebackApproved"]


def test_an_approval_signed_by_an_untrusted_key_is_rejected() -> None:
    mission = Mission().awaiting_approval()
    rogue = OperatorSigner("local", new_key_pair("local")[0])
    forged = rogue.sign(
        command(mission.id, ApproveWriteback(writeback_id="w1", reason="ok"), actor=OPERATOR)
    )
    assert rejection(mission.apply(forged)) == "operator_unproven"
    unknown = OperatorSigner("other", new_key_pair("other")[0]).sign(forged)
    assert rejection(mission.apply(unknown)) == "operator_unproven"


def test_a_signed_approval_altered_after_signing_is_rejected() -> None:
    mission = Mission().awaiting_approval()
    genuine = command(mission.id, RejectWriteback(writeback_id="w1", reason="no"), actor=OPERATOR)
    flipped = genuine.model_copy(update={"body": ApproveWriteback(writeback_id="w1", reason="no")})
    assert rejection(mission.apply(flipped)) == "operator_unproven"
    assert mission.state.writebacks["w1"].status == "awaiting_approval"


def test_only_an_operator_cancels_a_mission() -> None:
    mission = Mission().running()
    assert rejection(mission.do(CancelMission(reason="x"), "colony:planner")) == "operator_required"
    assert mission.types(mission.do(CancelMission(reason="x"), OPERATOR)) == ["MissionCancelled"]


def test_a_writeback_cannot_execute_without_approval() -> None:
    mission = Mission().awaiting_approval()
    result = mission.do(RecordWritebackResult(writeback_id="w1", succeeded=True, detail="x"))
    assert rejection(result) == "approval_missing"


def test_a_rejected_writeback_never_executes_and_the_mission_can_complete() -> None:
    mission = Mission().awaiting_approval()
    mission.do(RejectWriteback(writeback_id="w1", reason="wrong account"), OPERATOR)
    result = mission.do(RecordWritebackResult(writeback_id="w1", succeeded=True, detail="x"))
    assert rejection(result) == "approval_missing"
    assert mission.types(mission.do(CompleteMission(output="brief"))) == ["MissionCompleted"]


def test_completion_waits_for_open_writebacks() -> None:
    mission = Mission().awaiting_approval()
    assert rejection(mission.do(CompleteMission(output="x"))) == "wrong_status"
    mission.do(ApproveWriteback(writeback_id="w1", reason="ok"), OPERATOR)
    assert rejection(mission.do(CompleteMission(output="x"))) == "writebacks_open"


def test_dry_run_missions_never_propose_writebacks() -> None:
    mission = Mission(mode="dry_run").in_review()
    proposed = mission.do(
        ProposeWriteback(
            writeback_id="w1", target="crm", record_ref="r", changes={"a": "b"}, rationale="r"
        )
    )
    assert rejection(proposed) == "dry_run"


def test_anything_on_a_terminal_mission_is_rejected() -> None:
    mission = Mission().running()
    mission.do(FailMission(reason="operator gave up"), OPERATOR)
    assert rejection(mission.do(StartTask(task_id="t0", worker="w"))) == "mission_terminal"
    assert rejection(mission.do(CancelMission(reason="x"))) == "mission_terminal"


def test_review_needs_every_task_succeeded() -> None:
    mission = Mission().running()
    assert rejection(mission.do(BeginReview(reviewer="r"))) == "tasks_unfinished"


def test_a_failing_review_blocks_completion() -> None:
    mission = Mission().in_review(verdict="fail")
    assert rejection(mission.do(CompleteMission(output="x"))) == "review_failed"


def test_a_failed_task_can_be_retried_as_a_new_attempt() -> None:
    mission = Mission().running()
    mission.do(StartTask(task_id="t0", worker="w"))
    mission.do(FailTask(task_id="t0", error="provider 503", retryable=True))
    assert mission.types(mission.do(RetryTask(task_id="t0"))) == ["TaskRetried"]
    started = mission.do(StartTask(task_id="t0", worker="w"))
    assert isinstance(started[0], TaskStarted)
    assert started[0].attempt == 2


def test_a_stuck_task_and_mission_time_out_naming_their_stage() -> None:
    mission = Mission().running()
    mission.do(StartTask(task_id="t0", worker="w"))
    assert mission.types(mission.do(TimeOutTask(task_id="t0", timeout_ms=100))) == ["TaskTimedOut"]
    timed_out = mission.do(TimeOutMission(timeout_ms=1_000))
    assert isinstance(timed_out[0], MissionTimedOut)
    assert timed_out[0].stage == "tasks"
    assert timed_out[0].stuck_since == mission.log[2].meta.occurred_at  # when it began running
    assert mission.state.status == "timed_out"


def test_exceeding_the_token_budget_fails_the_mission() -> None:
    mission = Mission(token_budget=100).running()
    mission.do(StartTask(task_id="t0", worker="w"))
    bodies = mission.do(CompleteTask(task_id="t0", summary="s", tokens_used=150, duration_ms=1))
    assert mission.types(bodies) == ["TaskSucceeded", "BudgetExceeded", "MissionFailed"]
    assert isinstance(bodies[2], MissionFailed)
    assert bodies[2].reason == "budget_exceeded: tokens"
    assert mission.state.status == "failed"


def test_exceeding_the_time_budget_fails_the_mission() -> None:
    mission = Mission(time_budget_ms=1_000).running()
    bodies = mission.do(RecordBudgetUse(tokens=0, time_ms=2_000))
    assert mission.types(bodies) == ["BudgetUsed", "BudgetExceeded", "MissionFailed"]


def test_tool_decisions_are_recorded_with_their_rule() -> None:
    mission = Mission().running()
    denied = mission.do(
        RecordToolDecision(
            task_id="t0",
            tool="web_search",
            decision="denied",
            rule_id="prod.no_autonomous_research",
            reason="production",
        )
    )
    assert mission.types(denied) == ["ToolRequestDenied"]
    assert isinstance(denied[0], ToolRequestDenied)
    assert denied[0].rule_id == "prod.no_autonomous_research"


def stored(artifact_id: str, digit: str) -> StoredArtifact:
    return StoredArtifact(
        artifact_id=artifact_id, kind="source", content_hash=digit * 64, source="kb", size_bytes=1
    )


def test_a_batch_of_artifacts_is_one_event_and_older_single_records_still_count() -> None:
    mission = Mission().running()
    batch = mission.do(RecordArtifacts(artifacts=[stored("t0-0", "a"), stored("t0-1", "b")]))
    assert mission.types(batch) == ["ArtifactsRecorded"]
    assert isinstance(batch[0], ArtifactsRecorded)
    assert [a.artifact_id for a in batch[0].artifacts] == ["t0-0", "t0-1"]
    single = mission.do(RecordArtifact(**stored("t1-0", "c").model_dump()))
    assert mission.types(single) == ["ArtifactRecorded"]
    assert mission.state.artifacts == {"a" * 64, "b" * 64, "c" * 64}
    assert fold(mission.id, mission.log) == mission.state


def test_artifacts_are_taken_only_while_the_colony_works_the_mission() -> None:
    mission = Mission().requested()
    early = mission.do(RecordArtifacts(artifacts=[stored("early", "d")]))
    assert rejection(early) == "wrong_status"
    mission = Mission().running()
    mission.do(CancelMission(reason="enough"), OPERATOR)
    late = mission.do(RecordArtifacts(artifacts=[stored("late", "d")]))
    assert rejection(late) == "mission_terminal"
    assert mission.state.artifacts == set()


def test_replay_only_of_a_terminal_mission() -> None:
    mission = Mission().running()
    assert rejection(mission.do(ReplayMission(new_mission_id="m2", reason="r"), OPERATOR)) == (
        "mission_not_terminal"
    )
    mission.do(FailMission(reason="stuck"))
    assert rejection(mission.do(ReplayMission(new_mission_id="m2", reason="r"))) == (
        "operator_required"
    )
    replayed = mission.do(ReplayMission(new_mission_id="m2", reason="retry"), OPERATOR)
    assert mission.types(replayed) == ["MissionReplayRequested"]
    assert mission.state.replayed_as == ("m2",)


def test_a_plan_with_repeated_or_dangling_tasks_is_rejected() -> None:
    mission = Mission().requested()
    mission.do(StartPlanning(planner="p"))
    twice = [PlannedTask(task_id="a", kind="k", description="d")] * 2
    dangling = [PlannedTask(task_id="a", kind="k", description="d", depends_on=["zz"])]
    assert rejection(mission.do(RecordPlan(tasks=twice, rationale="r"))) == "invalid_plan"
    assert rejection(mission.do(RecordPlan(tasks=dangling, rationale="r"))) == "invalid_plan"


def test_every_status_a_mission_can_hold_is_open_or_terminal() -> None:
    """Views count and sweep open missions by naming OPEN_STATUSES: a status added to the
    state machine and left out of it would vanish from /metrics and the sweeper."""
    every = set(get_args(MissionStatus)) - {"new"}  # "new" is never projected
    assert set(OPEN_STATUSES) | TERMINAL_STATUSES == every
    assert not set(OPEN_STATUSES) & TERMINAL_STATUSES
