"""Release streams: gate runs and rollout steps as hash-chained ledger streams. Pure.

Release readiness is ledger data, like missions: a gate run is the stream
`release-gates:<run_id>` (started, one event per check with its evidence, completed), and
an environment's rollout is the stream `rollout:<environment>` (each advance or rollback,
by whom, why, and the hash of the evidence the root checked). Both are verified, archived
and restored with everything else. Every release command is an operator's, signed by the
root (the proof is checked in `decide` before this runs).
"""

from __future__ import annotations

from ledger.commands import (
    AdvanceRollout,
    Command,
    CompleteGateRun,
    RecordGateCheck,
    RollBackRollout,
    StartGateRun,
)
from ledger.events import (
    EventBody,
    GateCheckRecorded,
    GateRunCompleted,
    GateRunStarted,
    RolloutAdvanced,
    RolloutRolledBack,
)
from ledger.state import MissionState

RELEASE_COMMANDS = (StartGateRun, RecordGateCheck, CompleteGateRun, AdvanceRollout, RollBackRollout)
GATES_PREFIX = "release-gates:"
ROLLOUT_PREFIX = "rollout:"


def gate_run_stream(run_id: str) -> str:
    return f"{GATES_PREFIX}{run_id}"


def rollout_stream(environment: str) -> str:
    return f"{ROLLOUT_PREFIX}{environment}"


CRM_WRITEBACKS_STEP = 5
"""Production's step that enables CRM missions; reaching it needed gate 2's evidence."""


def production_writebacks_open(ledger_step: int) -> bool:
    """Whether production may propose CRM writebacks: only once the ledger holds step 5,
    which the root records only on a signed staging report with gate 2 passed (never on a
    variable anyone can set)."""
    return ledger_step >= CRM_WRITEBACKS_STEP


def is_release_stream(stream_id: str) -> bool:
    return stream_id.startswith((GATES_PREFIX, ROLLOUT_PREFIX))


Refusal = tuple[str, str]
"""(reason, detail) of a rejection; `decide` records it as CommandRejected."""


def decide_release(state: MissionState, command: Command) -> list[EventBody] | Refusal:
    """The events a release command produces against its stream's state, or why not."""
    body, stream = command.body, command.meta.mission_id
    if not command.meta.actor.startswith("operator:"):
        return ("operator_required", "only an operator records releases")
    if isinstance(body, StartGateRun):
        if stream != gate_run_stream(body.run_id) or state.sequence:
            return ("run_exists", f"{stream} is not a new gate run stream")
        return [GateRunStarted(**body.model_dump())]
    if isinstance(body, RecordGateCheck | CompleteGateRun):
        run = state.release
        if run is None or run.kind != "gates" or not run.open:
            return ("run_not_open", f"{stream} has no open gate run")
        if isinstance(body, RecordGateCheck):
            return [GateCheckRecorded(**body.model_dump())]
        return [GateRunCompleted(passed=run.failed == 0 and run.checks > 0, **_counts(state))]
    assert isinstance(body, AdvanceRollout | RollBackRollout)
    return _rollout(state, command, body)


def _counts(state: MissionState) -> dict[str, int]:
    """The recorded checks and failures of the run (the command carries none)."""
    run = state.release
    return {"checks": run.checks if run else 0, "failed": run.failed if run else 0}


def _rollout(
    state: MissionState, command: Command, body: AdvanceRollout | RollBackRollout
) -> list[EventBody] | Refusal:
    if command.meta.mission_id != rollout_stream(body.environment):
        return ("wrong_stream", f"the rollout of {body.environment} lives elsewhere")
    current = state.release.step if state.release else 1
    if isinstance(body, AdvanceRollout):
        if body.to_step <= current:
            return ("wrong_step", f"{body.environment} is at step {current}; advance goes forward")
        return [RolloutAdvanced(from_step=current, **body.model_dump())]
    if body.to_step >= current:
        return ("wrong_step", f"{body.environment} is at step {current}; a rollback goes back")
    return [RolloutRolledBack(from_step=current, **body.model_dump())]
