"""The console's trail: links verified by the verify code, stages from the fold."""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise

from gateway.console.trail import span_widths, verified_trail
from ledger.timeline import fold_timeline
from ledger.wire import LedgerWire
from tests.unit.ledger.scenario import Mission

WIRE = LedgerWire()


def rows(mission: Mission) -> list[dict[str, object]]:
    return [
        {
            "mission_id": e.meta.mission_id,
            "sequence": e.meta.sequence,
            "hash": e.meta.hash,
            "record": WIRE.encode_event(e).value,
        }
        for e in mission.log
    ]


def test_an_untouched_trail_is_verified_link_by_link() -> None:
    mission = Mission().in_review()
    trail = verified_trail(mission.id, rows(mission), WIRE)
    assert trail.intact
    assert all(link.verified for link in trail.links)
    assert trail.verdict == f"verified: {len(mission.log)} events, every link intact"
    assert trail.state.status == "in_review"


def test_a_row_whose_columns_disagree_with_its_bytes_is_shown_broken_where_it_breaks() -> None:
    mission = Mission().in_review()
    archived = rows(mission)
    archived[3]["hash"] = "0" * 64
    trail = verified_trail(mission.id, archived, WIRE)
    assert not trail.intact
    assert [link.verified for link in trail.links].index(False) == 3
    assert trail.verdict.startswith("BROKEN at sequence 4: columns differ")


def test_an_undecodable_record_and_a_gap_are_breaks_not_crashes() -> None:
    mission = Mission().in_review()
    archived = rows(mission)
    archived[1]["record"] = b"\x00garbage"
    del archived[4]
    trail = verified_trail(mission.id, archived, WIRE)
    problems = [link.problem for link in trail.links if link.problem]
    assert len(problems) >= 2
    assert trail.export()["chain"]["intact"] is False


def test_stages_are_spans_that_end_where_the_next_begins() -> None:
    mission = Mission().in_review()
    state, spans = fold_timeline(mission.id, mission.log)
    assert state.status == "in_review" and state.sequence == len(mission.log)
    assert [s.stage for s in spans] == ["intake", "planning", "tasks", "review"]
    assert all(a.ended_at == b.started_at for a, b in pairwise(spans))
    assert spans[-1].ended_at is None, "still in review"
    now = spans[-1].started_at + timedelta(seconds=10)
    shares = [share for _, _, share in span_widths(spans, now)]
    assert round(sum(shares)) == 100
    assert spans[-1].seconds(now) == 10
