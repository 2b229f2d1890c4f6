"""Admission under MAX_CONCURRENT_MISSIONS: who counts as working, who waits, who starts,
kept in a book as missions change rather than found by scanning every open mission."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from colony_consumers.admission import AdmissionBook, is_waiting, takes_slot
from colony_consumers.mission_file import MissionFile
from ledger.commands import CancelMission, CommandBody, QueueMission, StartPlanning
from ledger.step import step
from tests.factories import AUTHORITY, command, request_body

NOW = datetime.now(UTC)


def file_after(mission_id: str, *bodies: CommandBody, at: datetime) -> MissionFile:
    file = MissionFile.new(mission_id)
    for body in (request_body(), *bodies):
        _, events = step(file.state, command(mission_id, body), at, AUTHORITY)
        for event in events:
            file.record(event)
    return file


def book_of(*files: MissionFile) -> AdmissionBook:
    book = AdmissionBook()
    for file in files:
        book.update(file)
    return book


def test_queued_missions_wait_and_start_oldest_first() -> None:
    working = file_after("w", StartPlanning(planner="p"), at=NOW)
    late = file_after("late", QueueMission(position=2, limit=1), at=NOW + timedelta(seconds=2))
    early = file_after("early", QueueMission(position=1, limit=1), at=NOW + timedelta(seconds=1))
    book = book_of(working, late, early)
    assert is_waiting(early) and early.state.stage == "queued"
    assert book.taken(set()) == 1
    assert book.oldest(1, set()) == ["early"]
    assert book.oldest(1, {"early"}) == ["late"]
    assert book.oldest(5, set()) == ["early", "late"], "asking again changes nothing"
    assert book.taken({"early"}) == 2 and book.taken({"early"}, besides="early") == 1


def test_a_requested_mission_not_yet_queued_takes_a_slot() -> None:
    fresh = file_after("new", at=NOW)
    book = book_of(fresh)
    assert book.taken(set()) == 1 and not is_waiting(fresh)
    assert book.taken(set(), besides="new") == 0


def test_a_waiting_mission_whose_partition_comes_back_is_offered_once() -> None:
    """Revoked (forgotten) and assigned back while it waits, with the same state: one
    mission, one place in the queue (it was offered twice, to be started twice)."""
    waiting = file_after("m", QueueMission(position=1, limit=1), at=NOW)
    book = book_of(waiting)
    book.forget("m")
    book.update(waiting)
    assert book.oldest(5, set()) == ["m"]
    assert book.oldest(5, set()) == ["m"], "and still once when asked again"


STAGES: dict[str, tuple[CommandBody, ...]] = {
    "requested": (),
    "queued": (QueueMission(position=1, limit=1),),
    "planning": (StartPlanning(planner="p"),),
    "queued_then_planning": (QueueMission(position=1, limit=1), StartPlanning(planner="p")),
    "cancelled": (CancelMission(reason="r"),),
}


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 7), st.sampled_from(sorted(STAGES)), st.integers(0, 5), st.booleans()
        ),
        max_size=30,
    ),
    st.sets(st.integers(0, 7), max_size=3),
)
def test_the_book_answers_as_a_scan_of_every_open_mission_would(
    changes: list[tuple[int, str, int, bool]], starting_ids: set[int]
) -> None:
    """Missions moving through stages, ending or leaving (a partition revoked) in any
    order: the book's slots taken and oldest waiting missions are those a scan finds."""
    book, files = AdmissionBook(), dict[str, MissionFile]()
    for number, stage, seconds, leaves in changes:
        mission_id = f"m{number}"
        if leaves:
            files.pop(mission_id, None)
            book.forget(mission_id)
            continue
        file = file_after(mission_id, *STAGES[stage], at=NOW + timedelta(seconds=seconds))
        if file.state.terminal:
            files.pop(mission_id, None)
            book.forget(mission_id)
        else:
            files[mission_id] = file
            book.update(file)
    starting = {f"m{n}" for n in starting_ids} & files.keys()
    scanned = sum(1 for f in files.values() if takes_slot(f) or f.mission_id in starting)
    waiting = sorted(
        (f for f in files.values() if is_waiting(f) and f.mission_id not in starting),
        key=lambda f: (f.state.status_since, f.mission_id),
    )
    assert book.taken(starting) == scanned
    assert book.oldest(len(files), starting) == [f.mission_id for f in waiting]
