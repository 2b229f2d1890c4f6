"""The archive's commit notification names the batch's commands and what the ledger made
of each, so the root answers its waiting requests without asking the archive."""

from __future__ import annotations

import uuid

import orjson

from gateway.outcomes import read_note
from ledger.commands import CancelMission
from ledger.events import CommandRejected, RecordedEvent
from projections.archive import NOTE_LIMIT, outcomes_note
from projections.projection import Projected, ProjectedEvent
from tests.factories import mission_history


def projected(events: list[RecordedEvent]) -> list[ProjectedEvent]:
    return [
        Projected(0, offset, event.meta.mission_id.encode(), b"", event, event.meta.mission_id, "")
        for offset, event in enumerate(events)
    ]


def test_a_note_says_which_commands_were_applied_and_which_rejected() -> None:
    events = mission_history(str(uuid.uuid4()), uses=2, ending=CancelMission(reason="not needed"))
    rejected = events[-1]
    assert isinstance(rejected.body, CommandRejected)
    note = read_note(outcomes_note(projected(events)))
    assert note is not None
    assert set(note) == {event.meta.causation_id for event in events}
    assert note[rejected.meta.causation_id] == (f"{rejected.body.reason}: {rejected.body.detail}")
    assert all(note[e.meta.causation_id] is None for e in events[:-1])


def test_a_batch_too_large_for_one_notification_sends_the_root_to_the_archive() -> None:
    events: list[RecordedEvent] = []
    while len(orjson.dumps([e.meta.causation_id for e in events])) <= NOTE_LIMIT:
        events += mission_history(str(uuid.uuid4()), uses=20)
    assert outcomes_note(projected(events)) == ""
    assert read_note("") is None


def test_only_a_note_is_read_as_one() -> None:
    """A payload from a projector of an earlier release (its partition) wakes the query."""
    assert read_note("3") is None
    assert read_note("[1]") is None
    assert read_note('{"c1": 5}') is None
    assert read_note(None) is None
    assert read_note('{"c1": null, "c2": "unknown_mission: no"}') == {
        "c1": None,
        "c2": "unknown_mission: no",
    }


def test_a_rejection_of_a_command_wins_over_its_other_events_in_either_order() -> None:
    """As the archive's query reads it (`outcomes_of`: a rejection first)."""
    events = mission_history(str(uuid.uuid4()), uses=1, ending=CancelMission(reason="stop"))
    applied, rejected = events[0], events[-1]
    assert isinstance(rejected.body, CommandRejected)
    same = applied.model_copy(
        update={"meta": applied.meta.model_copy(update={"causation_id": "c1"})}
    )
    refused = rejected.model_copy(
        update={"meta": rejected.meta.model_copy(update={"causation_id": "c1"})}
    )
    expected = f"{rejected.body.reason}: {rejected.body.detail}"
    for order in ([same, refused], [refused, same]):
        assert read_note(outcomes_note(projected(order))) == {"c1": expected}
