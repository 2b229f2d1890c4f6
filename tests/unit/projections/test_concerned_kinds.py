"""Each view is handed only the kinds of event it writes for (`Projection.kinds`): the
filter must never drop a write the view would have made."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.events import RecordedEvent
from projections.feeds import all_projections, ledger_feed
from projections.projection import Projected, Projection

GOLDEN = Path(__file__).parents[2] / "golden"
EVENTS = sorted(GOLDEN.glob("velocity.events.*.avro"))
FILTERING = [p for p in all_projections() if p.kinds is not None]


def golden_event(path: Path) -> Projected[RecordedEvent]:
    item = ledger_feed().project(0, 0, path.read_bytes(), b"m-1")
    assert isinstance(item, Projected), item
    return item


@pytest.mark.parametrize("projection", FILTERING, ids=lambda p: p.name)
@pytest.mark.parametrize("path", EVENTS, ids=lambda p: p.stem.rsplit(".", 1)[1])
def test_a_view_is_spared_only_events_it_writes_nothing_for(
    projection: Projection[RecordedEvent], path: Path
) -> None:
    item = golden_event(path)
    writes = projection.writes(item) + projection.batch_writes([item])
    if item.kind in (projection.kinds or ()):
        assert projection.concerned([item]) == [item]
    else:
        assert writes == [], f"{projection.name} writes for {item.kind} but is never handed it"
        assert projection.concerned([item]) == []


def test_the_views_that_filter_still_see_the_events_they_exist_for() -> None:
    kinds = {p.name: p.kinds for p in FILTERING if p.kinds is not None}
    assert "WritebackApproved" in kinds["approvals"]
    assert "TaskSucceeded" in kinds["tasks"]
    assert {"ArtifactRecorded", "ArtifactsRecorded"} <= kinds["evidence"]
    assert not any("BudgetUsed" in k for k in kinds.values())
