"""How the colony groups the artifacts it stores into requests to the root."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from colony_consumers.root_client import BATCH_ARTIFACTS, BATCH_BYTES, Artifact, batches

sizes = st.lists(st.integers(min_value=0, max_value=BATCH_BYTES + 10), max_size=60)


@given(sizes)
def test_batches_keep_the_order_and_stay_within_bounds(lengths: list[int]) -> None:
    artifacts = [Artifact("x" * n, artifact_id=str(i)) for i, n in enumerate(lengths)]
    groups = batches(artifacts)
    assert [a for group in groups for a in group] == artifacts
    for group in groups:
        assert 1 <= len(group) <= BATCH_ARTIFACTS
        assert len(group) == 1 or sum(len(a.content) for a in group) <= BATCH_BYTES


def test_a_research_tasks_sources_go_in_one_request() -> None:
    sources = [Artifact(f"source {i}", mission_id="m", kind="source") for i in range(5)]
    assert batches(sources) == [sources]
