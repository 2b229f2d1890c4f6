"""A mission's history is bounded (ledger/history_limit.py): an open mission reaching
`max_events` is failed, an ended one takes a tenth more, then commands are set aside."""

from __future__ import annotations

from datetime import UTC, datetime

from ledger.commands import Command, RecordBudgetUse, RecordMcpCall
from ledger.events import CommandRejected, MissionFailed
from ledger.history_limit import ended_cap, history_full
from ledger.state import MissionState
from ledger.step import step
from tests.factories import AUTHORITY, command, request_body

NOW = datetime.now(UTC)
LIMIT = 100
BUDGETS = {"time_budget_ms": 10**9, "token_budget": 10**9}


def run(state: MissionState, *commands: Command, limit: int = LIMIT) -> MissionState:
    for item in commands:
        state, _ = step(state, item, NOW, AUTHORITY, limit)
    return state


def spent(mission_id: str) -> Command:
    return command(mission_id, RecordBudgetUse(tokens=1, time_ms=1))


def mission_with(events: int, limit: int = LIMIT) -> MissionState:
    """An open mission holding `events` events (its request, then budget records), grown
    under `limit`."""
    requested = command("m", request_body(**BUDGETS))
    budget_records = (spent("m") for _ in range(events - 1))
    return run(MissionState(mission_id="m"), requested, *budget_records, limit=limit)


def test_the_command_that_would_reach_the_limit_fails_the_mission_instead() -> None:
    state = mission_with(LIMIT - 1)
    crossing = spent("m")
    after, events = step(state, crossing, NOW, AUTHORITY, LIMIT)
    assert [type(e.body) for e in events] == [MissionFailed]
    assert isinstance(events[0].body, MissionFailed)
    assert events[0].body.reason.startswith("history_limit: the mission reached 100 events")
    assert after.sequence == LIMIT and after.status == "failed"
    again, repeated = step(after, crossing, NOW, AUTHORITY, LIMIT)
    assert repeated == [] and again == after, "a redelivery of it appends nothing"


def test_a_command_of_several_events_that_would_cross_the_limit_fails_it_too() -> None:
    """A budget breach appends two events: with room for one, the mission fails; a budget
    record of one event still fits."""
    state = mission_with(LIMIT - 2)
    breach = command("m", RecordBudgetUse(tokens=10**9, time_ms=1))
    _, events = step(state, breach, NOW, AUTHORITY, LIMIT)
    assert [type(e.body) for e in events] == [MissionFailed]
    after, fits = step(state, spent("m"), NOW, AUTHORITY, LIMIT)
    assert len(fits) == 1 and after.status == "requested" and after.sequence == LIMIT - 1


def test_an_ended_mission_takes_a_tenth_more_then_commands_are_set_aside() -> None:
    state = run(mission_with(LIMIT - 1), spent("m"))
    late = [command("m", RecordMcpCall(tool="t", arguments_hash="0" * 64, outcome="ok"))]
    late += [spent("m") for _ in range(LIMIT // 10 - 1)]
    state = run(state, *late)
    assert state.sequence == ended_cap(LIMIT) == 110
    one_more = spent("m")
    why = history_full(state, one_more.meta.command_id, LIMIT)
    assert why is not None and "holds 110 events" in why and "MISSION_MAX_EVENTS 100" in why
    assert history_full(state, late[-1].meta.command_id, LIMIT) is None, "applied: not refused"


def test_rejections_of_an_ended_mission_count_toward_its_cap() -> None:
    state = run(mission_with(LIMIT - 1), spent("m"))
    _, events = step(state, spent("m"), NOW, AUTHORITY, LIMIT)
    assert isinstance(events[0].body, CommandRejected)
    assert events[0].body.reason == "mission_terminal"


def test_an_open_mission_grown_past_the_cap_before_the_limit_existed_is_failed() -> None:
    """Not set aside: that would leave it open for good, its colony waiting on it."""
    state = mission_with(ended_cap(LIMIT) + 5, limit=10 * LIMIT)
    assert state.status == "requested" and state.sequence > ended_cap(LIMIT)
    next_one = spent("m")
    assert history_full(state, next_one.meta.command_id, LIMIT) is None
    _, events = step(state, next_one, NOW, AUTHORITY, LIMIT)
    assert [type(e.body) for e in events] == [MissionFailed]


def test_a_new_mission_and_a_short_one_are_untouched() -> None:
    state = mission_with(10)
    assert state.status == "requested" and state.sequence == 10
    assert history_full(MissionState(mission_id="n"), "c", LIMIT) is None
