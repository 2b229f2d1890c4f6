"""What the colony does next, event by event (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from colony_consumers.mission_file import MissionFile
from colony_consumers.policy import PolicyContext
from colony_consumers.reactions import (
    ProposeWritebacks,
    RunTask,
    Send,
    react,
    reaction_id,
    step_id,
)
from colony_consumers.worker import colony_command
from ledger.commands import Command, FailMission, RecordToolDecision, StartTask
from ledger.events import RecordedEvent, ReviewerPacketRecorded, TaskStarted
from ledger.step import step
from tests.factories import AUTHORITY, command, request_body
from tests.unit.colony_consumers.mission_files import folded, planned

PACKET = ReviewerPacketRecorded(packet_hash="a" * 64, verdict="pass", output="o", checks=[])


def planned_file(**request: Any) -> MissionFile:
    """A mission file after request, planning and its plan (a CRM mission unless said)."""
    return folded(request.pop("mission_type", "crm"), **request)


def production(**overrides: Any) -> PolicyContext:
    fields = {"environment": "production", "mission_type": "crm", "mode": "assisted"}
    return PolicyContext(**(fields | overrides))


def test_reaction_ids_are_stable_per_event_and_step() -> None:
    assert reaction_id("e1", "start") == reaction_id("e1", "start")
    assert reaction_id("e1", "start") != reaction_id("e2", "start")


def test_a_planned_mission_records_the_policy_decision_then_starts_its_first_task() -> None:
    reaction = react(planned_file(), planned("crm"), production(), workers=1)
    assert isinstance(reaction, Send)
    decision, start = (body for _, body in reaction.commands)
    assert isinstance(decision, RecordToolDecision) and decision.decision == "allowed"
    assert isinstance(start, StartTask) and start.task_id == "gather_account"


def test_a_blocked_tool_is_denied_and_fails_the_mission_naming_the_rule() -> None:
    file = planned_file(mission_type="oracle", project_id="atlas")
    reaction = react(file, planned("oracle"), production(mission_type="oracle", mode="autonomous"))
    assert isinstance(reaction, Send)
    denial, failure = (body for _, body in reaction.commands)
    assert isinstance(denial, RecordToolDecision) and denial.decision == "denied"
    assert denial.rule_id == "prod.assisted_only"
    assert isinstance(failure, FailMission) and "prod.assisted_only" in failure.reason


def test_a_reviewed_crm_mission_goes_to_the_writeback_guard_and_an_oracle_one_completes() -> None:
    assert isinstance(react(planned_file(), PACKET, production()), ProposeWritebacks)
    oracle = planned_file(mission_type="oracle", project_id="atlas")
    assert isinstance(react(oracle, PACKET, production(mission_type="oracle")), Send)


def test_a_started_task_runs_with_its_tool() -> None:
    started = TaskStarted(task_id="gather_account", worker="w", attempt=1)
    assert react(planned_file(), started, None) == RunTask("gather_account", "crm_lookup")


def test_ready_tasks_start_in_parallel_up_to_max_workers_per_mission() -> None:
    def started(workers: int) -> list[str]:
        reaction = react(planned_file(), planned("crm"), production(), workers)
        assert isinstance(reaction, Send)
        return [body.task_id for _, body in reaction.commands if isinstance(body, StartTask)]

    assert started(1) == ["gather_account"]
    assert started(4) == ["gather_account", "research"]


def colony_commands(file: MissionFile, event: RecordedEvent, reaction: Send) -> list[Command]:
    return [
        colony_command(
            file.mission_id,
            step_id(file.mission_id, event.meta.event_id, step_name),
            body,
            step_name.split("/")[0],
            event.meta.correlation_id,
            event.meta.trace_id,
        )
        for step_name, body in reaction.commands
    ]


def test_a_new_missions_first_reaction_takes_its_first_steps_at_once() -> None:
    """The request's reaction starts planning, records the plan and starts the first task
    in one go; the ledger accepts them in that order, and the events they make prompt the
    same steps again under the same ids (so the colony that sent them sends nothing)."""
    context = production(mission_type="oracle")
    file = MissionFile.new("m-1")
    request = command("m-1", request_body(mission_type="oracle", project_id="atlas"))
    state, (requested,) = step(file.state, request, datetime.now(UTC), AUTHORITY)
    file.record(requested)
    first = react(file, requested.body, context, workers=4)
    assert isinstance(first, Send)
    assert [type(body).__name__ for _, body in first.commands] == [
        "StartPlanning",
        "RecordPlan",
        "RecordToolDecision",
        "StartTask",
    ]
    sent = {c.meta.command_id for c in colony_commands(file, requested, first)}
    events: list[RecordedEvent] = []
    for item in colony_commands(file, requested, first):
        state, new = step(state, item, datetime.now(UTC), AUTHORITY)
        events += new
    assert [e.event_type for e in events] == [
        "PlanningStarted",
        "MissionPlanned",
        "ToolRequestAllowed",
        "TaskStarted",
    ]
    for event in events:
        file.record(event)
        again = react(file, event.body, context, workers=4)
        if isinstance(again, Send):
            assert {c.meta.command_id for c in colony_commands(file, event, again)} <= sent
    assert file.state.status == "running"
