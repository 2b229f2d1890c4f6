"""A mission's sources are numbered the same however their records interleaved (the
colony stores a task's documents concurrently, and tasks run in parallel)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from colony_consumers.mission_file import MissionFile, source_order
from ledger.commands import StoredArtifact
from ledger.events import ArtifactRecorded, ArtifactsRecorded, EventBody, EventMeta, RecordedEvent


def source(artifact_id: str) -> ArtifactRecorded:
    return ArtifactRecorded(
        artifact_id=artifact_id, kind="source", content_hash="a" * 64, source="kb", size_bytes=1
    )


def stored(artifact_id: str, kind: str = "source") -> StoredArtifact:
    return StoredArtifact(**source(artifact_id).model_dump() | {"kind": kind})


def recorded(body: EventBody, sequence: int) -> RecordedEvent:
    meta = EventMeta(
        event_id=f"e-{sequence}",
        event_type=type(body).__name__,
        mission_id="m-1",
        sequence=sequence,
        occurred_at=datetime(2026, 11, 27, tzinfo=UTC),
        causation_id=f"c-{sequence}",
        correlation_id="m-1",
        trace_id="t" * 32,
        actor="root",
        prev_hash="0" * 64,
        hash="0" * 64,
    )
    return RecordedEvent(meta=meta, body=body)


IDS = ["gather_account-0", "research-0", "research-1", "research-2", "research-10"]


@given(st.permutations(IDS))
def test_sources_take_task_then_document_order_whatever_the_arrival(arrival: list[str]) -> None:
    ordered = sorted((stored(i) for i in arrival), key=source_order)
    assert [s.artifact_id for s in ordered] == IDS


def test_sources_of_batches_and_of_single_records_are_merged_in_order() -> None:
    file = MissionFile.new("m-1")
    events = [
        ArtifactsRecorded(artifacts=[stored("research-1"), stored("draft", "draft")]),
        source("research-0"),
        ArtifactsRecorded(artifacts=[stored("gather_account-0")]),
    ]
    for sequence, body in enumerate(events, 1):
        file.record(recorded(body, sequence))
    assert [s.artifact_id for s in file.sources] == ["gather_account-0", "research-0", "research-1"]


def test_an_artifact_id_without_a_number_still_has_a_stable_place() -> None:
    odd = sorted([stored("notes"), stored("research-1"), stored("alpha")], key=source_order)
    assert [s.artifact_id for s in odd] == ["alpha", "notes", "research-1"]
