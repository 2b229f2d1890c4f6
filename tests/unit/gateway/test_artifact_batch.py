"""The largest batch POST /internal/artifacts/batch takes still fits one RecordArtifacts:
otherwise a valid request would fail after its blobs were stored."""

from __future__ import annotations

from gateway.mission_models import MAX_BATCH_ARTIFACTS
from ledger.commands import MAX_ARTIFACTS_PER_RECORD, RecordArtifacts, StoredArtifact


def test_a_full_batch_for_one_mission_is_one_valid_command() -> None:
    artifact = StoredArtifact(
        artifact_id="a", kind="source", content_hash="a" * 64, source="kb", size_bytes=1
    )
    command = RecordArtifacts(artifacts=[artifact] * MAX_BATCH_ARTIFACTS)
    assert len(command.artifacts) == MAX_BATCH_ARTIFACTS <= MAX_ARTIFACTS_PER_RECORD
