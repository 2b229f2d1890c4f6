"""The colony holds only missions being worked: an ended mission's file leaves memory, and
its later events (a replay request, a late command's rejection) are ignored quietly."""

from __future__ import annotations

from datetime import UTC, datetime

from loguru import logger
from opentelemetry.context import Context

from colony_consumers.colony import ENDED_KEPT, Colony
from colony_consumers.settings import ColonySettings
from ledger.commands import FailMission, RecordBudgetUse
from ledger.events import RecordedEvent
from ledger.state import MissionState
from ledger.step import step
from tests.factories import AUTHORITY, command, request_body


def history(mission_id: str) -> list[RecordedEvent]:
    """A mission requested, failed, then sent one more command (rejected: it ended)."""
    state, events = MissionState(mission_id=mission_id), []
    for body in (request_body(), FailMission(reason="stop"), RecordBudgetUse(tokens=1, time_ms=1)):
        state, new = step(state, command(mission_id, body), datetime.now(UTC), AUTHORITY)
        events += new
    return events


def colony() -> Colony:
    return Colony(ColonySettings(), {"bootstrap_servers": "127.0.0.1:1"}, None, None, None, None)  # type: ignore[arg-type]


def test_an_ended_missions_file_leaves_memory_and_later_events_are_ignored() -> None:
    reactor = colony()
    events = history("m-ended")
    assert [e.event_type for e in events][-1] == "CommandRejected"
    for event in events[:2]:
        folded = reactor.fold(event)
        assert folded is not None
        reactor.settle(folded)
    assert "m-ended" not in reactor.files
    assert reactor.fold(events[2]) is None
    assert "m-ended" not in reactor.files


def test_a_mission_being_worked_stays() -> None:
    reactor = colony()
    folded = reactor.fold(history("m-open")[0])
    assert folded is not None
    reactor.settle(folded)
    assert "m-open" in reactor.files


def test_an_event_of_a_mission_ended_before_those_remembered_is_ignored_quietly() -> None:
    """Memory keeps ENDED_KEPT ended ids; an operator replaying a mission that ended long
    before gets no file made for it and no warning in the colony's log."""
    reactor = colony()
    warnings: list[str] = []
    sink = logger.add(warnings.append, level="WARNING")
    try:
        events = history("m-long-ago")
        for event in events[:2]:
            folded = reactor.fold(event)
            assert folded is not None
            reactor.settle(folded)
        for other in range(ENDED_KEPT):
            reactor.ended[f"m-later-{other}"] = True
        assert "m-long-ago" not in reactor.ended, "pushed out by later endings"
        assert reactor.fold(events[2]) is None
    finally:
        logger.remove(sink)
    assert "m-long-ago" not in reactor.files
    assert warnings == []


async def test_a_late_event_of_an_ended_mission_leaves_nothing_behind() -> None:
    """The rejection of a command sent just before a mission ended (a colony's own
    StartPlanning, an operator's late click) is common: a colony that kept even its
    mission's partition for each grew by ~13 MB over a million events."""
    reactor = colony()
    events = history("m-late")
    for event in events[:2]:
        folded = reactor.fold(event)
        assert folded is not None
        reactor.settle(folded)
    await reactor.follow(0, 2, events[2], Context())
    assert reactor.home == {}
    assert reactor.files == {}
