"""The one rule for what a mission's history is: the next link, first writer wins."""

from __future__ import annotations

from datetime import UTC, datetime

from ledger.chain import record
from ledger.commands import StartPlanning
from ledger.events import PlanningStarted, RecordedEvent
from ledger.history import START, History, why_not_next
from ledger.state import fold
from tests.factories import command
from tests.unit.ledger.scenario import Mission


def chain() -> list[RecordedEvent]:
    mission = Mission().running()
    return mission.log


def test_a_chain_in_order_is_history() -> None:
    history = History()
    assert [history.admit(event) for event in chain()] == [None] * 3


def test_a_second_record_at_a_taken_position_is_not_history_first_writer_wins() -> None:
    events = chain()
    fork = record(
        fold(events[0].meta.mission_id, events[:1]),
        command(events[0].meta.mission_id, StartPlanning(planner="zombie")),
        [PlanningStarted(planner="zombie")],
        datetime.now(UTC),
    )[0]
    history = History()
    verdicts = [history.admit(e) for e in (events[0], events[1], fork, events[2])]
    assert verdicts[2] is not None and verdicts[2].startswith("position_taken")
    assert verdicts[3] is None, "the chain goes on from the first writer's event"
    assert history.heads[events[0].meta.mission_id] == (3, events[2].meta.hash)


def test_the_orphan_after_a_gap_and_an_unlinked_record_are_not_history() -> None:
    events = chain()
    history = History()
    history.admit(events[0])
    gap = history.admit(events[2])
    assert gap is not None and gap.startswith("gap")
    unlinked = events[1].model_copy(
        update={"meta": events[1].meta.model_copy(update={"prev_hash": "f" * 64})}
    )
    why = why_not_next((1, events[0].meta.hash), unlinked)
    assert why is not None and why.startswith("unlinked")


def test_a_first_event_must_start_from_the_genesis_hash() -> None:
    first = chain()[0]
    assert History().admit(first) is None
    elsewhere = first.model_copy(
        update={"meta": first.meta.model_copy(update={"prev_hash": "1" * 64})}
    )
    why = why_not_next(START, elsewhere)
    assert why is not None and why.startswith("unlinked")
