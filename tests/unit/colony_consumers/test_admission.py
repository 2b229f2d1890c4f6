"""Admission under MAX_CONCURRENT_MISSIONS: who counts as working, who waits, who starts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from colony_consumers.admission import is_waiting, next_waiting, working_count
from colony_consumers.mission_file import MissionFile
from ledger.commands import CommandBody, QueueMission, StartPlanning
from ledger.step import step
from tests.factories import AUTHORITY, command, request_body


def file_after(mission_id: str, *bodies: CommandBody, at: datetime) -> MissionFile:
    file = MissionFile.new(mission_id)
    for body in (request_body(), *bodies):
        _, events = step(file.state, command(mission_id, body), at, AUTHORITY)
        for event in events:
            file.record(event)
    return file


def test_queued_missions_wait_and_start_oldest_first() -> None:
    now = datetime.now(UTC)
    working = file_after("w", StartPlanning(planner="p"), at=now)
    late = file_after("late", QueueMission(position=2, limit=1), at=now + timedelta(seconds=2))
    early = file_after("early", QueueMission(position=1, limit=1), at=now + timedelta(seconds=1))
    files = [working, late, early]
    assert is_waiting(early) and early.state.stage == "queued"
    assert working_count(files, set()) == 1
    assert [f.mission_id for f in next_waiting(files, set(), 1)] == ["early"]
    assert next_waiting(files, {"early"}, 1)[0].mission_id == "late"
    assert working_count(files, {"early"}) == 2


def test_a_requested_mission_not_yet_queued_takes_a_slot() -> None:
    fresh = file_after("new", at=datetime.now(UTC))
    assert working_count([fresh], set()) == 1 and not is_waiting(fresh)
