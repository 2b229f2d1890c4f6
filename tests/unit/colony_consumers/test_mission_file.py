"""A mission's sources are numbered the same however their records interleaved (the
colony stores a task's documents concurrently, and tasks run in parallel)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from colony_consumers.mission_file import source_order
from ledger.events import ArtifactRecorded


def source(artifact_id: str) -> ArtifactRecorded:
    return ArtifactRecorded(
        artifact_id=artifact_id, kind="source", content_hash="a" * 64, source="kb", size_bytes=1
    )


IDS = ["gather_account-0", "research-0", "research-1", "research-2", "research-10"]


@given(st.permutations(IDS))
def test_sources_take_task_then_document_order_whatever_the_arrival(arrival: list[str]) -> None:
    ordered = sorted((source(i) for i in arrival), key=source_order)
    assert [s.artifact_id for s in ordered] == IDS


def test_an_artifact_id_without_a_number_still_has_a_stable_place() -> None:
    odd = sorted([source("notes"), source("research-1"), source("alpha")], key=source_order)
    assert [s.artifact_id for s in odd] == ["alpha", "notes", "research-1"]
