"""Properties of the decider over random command sequences (hypothesis).

Whatever arrives, in whatever order, from whichever actor: the decider's state equals
the fold of its events; every mission's sequence is 1..n with an unbroken hash chain;
no writeback executes without an operator's approval earlier in the same mission.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.chain import verify_link
from ledger.commands import (
    ApproveWriteback,
    BeginReview,
    CancelMission,
    CommandBody,
    CompleteMission,
    CompleteTask,
    FailMission,
    FailTask,
    PlannedTask,
    ProposeWriteback,
    RecordBudgetUse,
    RecordPlan,
    RecordReview,
    RecordWritebackResult,
    RejectWriteback,
    ReplayMission,
    RetryTask,
    StartPlanning,
    StartTask,
    TimeOutMission,
    TimeOutTask,
)
from ledger.events import (
    GENESIS_HASH,
    CommandRejected,
    RecordedEvent,
    WritebackApproved,
    WritebackExecuted,
)
from ledger.state import fold
from tests.factories import command, request_body
from tests.unit.ledger.scenario import OPERATOR, PACKET, Mission

tasks = st.sampled_from(["t0", "t1"])
writebacks = st.sampled_from(["w1", "w2"])
text = st.sampled_from(["ok", "why"])
plan = RecordPlan(
    tasks=[PlannedTask(task_id=t, kind="k", description="d") for t in ("t0", "t1")],
    rationale="r",
)
working: st.SearchStrategy[CommandBody] = st.one_of(
    st.just(request_body()),
    st.just(StartPlanning(planner="p")),
    st.just(plan),
    st.builds(StartTask, task_id=tasks, worker=text),
    st.builds(
        CompleteTask,
        task_id=tasks,
        summary=text,
        tokens_used=st.integers(0, 6_000),
        duration_ms=st.integers(0, 100),
    ),
    st.builds(FailTask, task_id=tasks, error=text, retryable=st.booleans()),
    st.builds(RetryTask, task_id=tasks),
    st.builds(TimeOutTask, task_id=tasks, timeout_ms=st.just(10)),
    st.builds(RecordBudgetUse, tokens=st.integers(0, 3_000), time_ms=st.integers(0, 100)),
    st.just(BeginReview(reviewer="r")),
    st.builds(
        RecordReview,
        packet_hash=st.just(PACKET),
        verdict=st.sampled_from(["pass", "fail"]),
        output=text,
    ),
    st.builds(
        ProposeWriteback,
        writeback_id=writebacks,
        target=st.just("crm"),
        record_ref=st.just("acct"),
        changes=st.just({"score": "80"}),
        rationale=text,
    ),
)
deciding: st.SearchStrategy[CommandBody] = st.one_of(
    st.builds(ApproveWriteback, writeback_id=writebacks, reason=text),
    st.builds(RejectWriteback, writeback_id=writebacks, reason=text),
    st.builds(RecordWritebackResult, writeback_id=writebacks, succeeded=st.booleans(), detail=text),
)
ending: st.SearchStrategy[CommandBody] = st.one_of(
    st.builds(CompleteMission, output=text),
    st.builds(FailMission, reason=text),
    st.builds(CancelMission, reason=text),
    st.builds(TimeOutMission, timeout_ms=st.just(5)),
    st.builds(ReplayMission, new_mission_id=st.just("m2"), reason=text),
)
# Ending commands are rarer, so sequences live long enough to reach approvals.
bodies = st.one_of(working, working, working, deciding, deciding, ending)
FORGED = "forged"  # an operator's actor without the root's signature
actors = st.sampled_from([OPERATOR, OPERATOR, "colony:worker", "service:intake", FORGED])
Step = tuple[CommandBody, str, int]  # a command, its actor, the seed of its command id
steps = st.lists(st.tuples(bodies, actors, st.integers(0, 40)), max_size=60)
# Most random sequences die early; these prefixes reach the deep states often.
happy_prefix = st.sampled_from(["none", "in_review", "awaiting_approval"])


def drive(sequence: list[Step], prefix: str) -> Mission:
    mission = Mission(token_budget=10_000)
    if prefix == "in_review":
        mission.in_review()
    if prefix == "awaiting_approval":
        mission.awaiting_approval()
    for body, actor, id_seed in sequence:
        # a small id space makes redeliveries (same command id) common
        command_id = f"{mission.id}/{id_seed}"
        if actor == FORGED:
            mission.apply(command(mission.id, body, command_id, OPERATOR, signed=False))
        else:
            mission.do(body, actor, command_id=command_id)
    return mission


def unproven(event: RecordedEvent) -> bool:
    return isinstance(event.body, CommandRejected) and event.body.reason == "operator_unproven"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequence=steps, prefix=happy_prefix)
def test_state_is_always_the_fold_of_the_events(sequence: list[Step], prefix: str) -> None:
    mission = drive(sequence, prefix)
    assert fold(mission.id, mission.log) == mission.state


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequence=steps, prefix=happy_prefix)
def test_sequences_are_gap_free_and_the_chain_unbroken(sequence: list[Step], prefix: str) -> None:
    mission = drive(sequence, prefix)
    assert [e.meta.sequence for e in mission.log] == list(range(1, len(mission.log) + 1))
    previous = GENESIS_HASH
    for event in mission.log:
        assert verify_link(previous, event)
        previous = event.meta.hash
    assert len({e.meta.event_id for e in mission.log}) == len(mission.log)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequence=steps, prefix=happy_prefix)
def test_no_writeback_executes_without_an_earlier_operator_approval(
    sequence: list[Step], prefix: str
) -> None:
    mission = drive(sequence, prefix)
    forged = {f"{mission.id}/{seed}" for _, actor, seed in sequence if actor == FORGED}
    signed = {f"{mission.id}/{seed}" for _, actor, seed in sequence if actor == OPERATOR}
    genuine = {f"{mission.id}/{seed}" for _, actor, seed in sequence if actor != FORGED}
    approved: set[str] = set()
    for event in mission.log:
        if isinstance(event.body, WritebackApproved):
            assert event.meta.actor.startswith("operator:")
            assert event.meta.causation_id in signed
            approved.add(event.body.writeback_id)
        if event.meta.causation_id in forged - genuine:
            assert unproven(event), "a forged operator command changed the mission"
        if isinstance(event.body, WritebackExecuted):
            assert event.body.writeback_id in approved


@settings(max_examples=200, deadline=None)
@given(sequence=steps, prefix=happy_prefix)
def test_each_new_command_id_leaves_a_trace_and_a_repeated_one_none(
    sequence: list[Step], prefix: str
) -> None:
    mission = drive(sequence, prefix)
    causes = [e.meta.causation_id for e in mission.log]
    seen = {f"{mission.id}/{seed}" for _, _, seed in sequence}
    assert seen <= set(causes)
    # events of one command are contiguous and a redelivery never appends more; only an
    # unproven operator command leaves its id unused (so a forger cannot squat it)
    proven = [e.meta.causation_id for e in mission.log if not unproven(e)]
    runs = [c for i, c in enumerate(proven) if i == 0 or proven[i - 1] != c]
    assert len(runs) == len(set(runs))
    refused = [(e.meta.causation_id, str(e.body)) for e in mission.log if unproven(e)]
    assert len(refused) == len(set(refused)), "a redelivered forgery was recorded twice"


approval_steps = st.lists(st.tuples(deciding, actors, st.integers(0, 40)), max_size=30)


@settings(max_examples=300, deadline=None)
@given(sequence=approval_steps)
def test_approval_races_never_execute_an_unapproved_writeback(sequence: list[Step]) -> None:
    mission = drive(sequence, "awaiting_approval")
    approved: set[str] = set()
    executed: list[str] = []
    for event in mission.log:
        if isinstance(event.body, WritebackApproved):
            approved.add(event.body.writeback_id)
        if isinstance(event.body, WritebackExecuted):
            assert event.body.writeback_id in approved
            executed.append(event.body.writeback_id)
    assert len(executed) == len(set(executed)), "a writeback executed twice"
    assert fold(mission.id, mission.log) == mission.state
