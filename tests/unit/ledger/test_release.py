"""Release streams: gate runs and rollouts as ledger streams with their own rules."""

from __future__ import annotations

from datetime import UTC, datetime

from ledger.commands import (
    AdvanceRollout,
    CommandBody,
    CompleteGateRun,
    RecordGateCheck,
    RollBackRollout,
    StartGateRun,
)
from ledger.events import EventBody
from ledger.release import gate_run_stream, production_writebacks_open, rollout_stream
from ledger.state import MissionState
from ledger.step import step
from tests.factories import AUTHORITY, OPERATOR, command


class Stream:
    def __init__(self, stream_id: str) -> None:
        self.state = MissionState(mission_id=stream_id)

    def do(self, body: CommandBody, actor: str = OPERATOR) -> list[EventBody]:
        cmd = command(self.state.mission_id, body, actor=actor)
        self.state, events = step(self.state, cmd, datetime.now(UTC), AUTHORITY)
        return [e.body for e in events]


def check(passed: bool) -> RecordGateCheck:
    return RecordGateCheck(
        gate=1, check="oracle completes", passed=passed, evidence="m", duration_ms=5
    )


def start() -> StartGateRun:
    return StartGateRun(run_id="r1", version="0.1.0", environment="staging", root_url="http://x")


def test_a_gate_run_passes_only_when_every_recorded_check_passed() -> None:
    run = Stream(gate_run_stream("r1"))
    assert type(run.do(start())[0]).__name__ == "GateRunStarted"
    run.do(check(True))
    run.do(check(False))
    [completed] = run.do(CompleteGateRun())
    assert (completed.passed, completed.checks, completed.failed) == (False, 2, 1)  # type: ignore[attr-defined]
    [late] = run.do(check(True))
    assert late.reason == "run_not_open"  # type: ignore[attr-defined]


def test_an_empty_run_does_not_pass_and_a_run_cannot_start_twice() -> None:
    run = Stream(gate_run_stream("r1"))
    run.do(start())
    assert run.do(start())[0].reason == "run_exists"  # type: ignore[attr-defined]
    [completed] = run.do(CompleteGateRun())
    assert completed.passed is False  # type: ignore[attr-defined]


def test_only_an_operator_records_releases() -> None:
    run = Stream(gate_run_stream("r1"))
    [refused] = run.do(start(), actor="service:ci")
    assert refused.reason == "operator_required"  # type: ignore[attr-defined]


def test_a_rollout_moves_forward_then_back_and_never_sideways() -> None:
    rollout = Stream(rollout_stream("production"))
    advance = AdvanceRollout(environment="production", to_step=4, reason="staging green")
    [moved] = rollout.do(advance)
    assert (moved.from_step, moved.to_step) == (1, 4)  # type: ignore[attr-defined]
    assert rollout.do(advance)[0].reason == "wrong_step"  # type: ignore[attr-defined]
    [back] = rollout.do(RollBackRollout(environment="production", to_step=2, reason="incident"))
    assert (back.from_step, back.to_step) == (4, 2)  # type: ignore[attr-defined]
    assert rollout.state.release is not None and rollout.state.release.step == 2


def test_a_rollout_command_for_another_environment_is_refused() -> None:
    rollout = Stream(rollout_stream("staging"))
    [refused] = rollout.do(AdvanceRollout(environment="production", to_step=4, reason="x"))
    assert refused.reason == "wrong_stream"  # type: ignore[attr-defined]


def test_production_writebacks_open_only_at_the_ledgers_step_5() -> None:
    assert [production_writebacks_open(step) for step in range(1, 7)] == [
        False,
        False,
        False,
        False,
        True,
        True,
    ]
