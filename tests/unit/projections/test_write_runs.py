"""Regrouping a batch's writes into runs of one statement (projections/projection.py).

Each run is one round trip to PostgreSQL, so a batch of 1,000 events of 100 missions
should cost a handful of runs, not one per event; and no mission's writes may change
order, or a view would apply an update before the insert it updates."""

from __future__ import annotations

from itertools import groupby

from hypothesis import given
from hypothesis import strategies as st

from projections.projection import Write, in_runs

STATEMENTS = ["INSERT", "MOVE", "BUDGET", "ADVANCE"]
sequences = st.lists(
    st.lists(st.sampled_from(STATEMENTS), max_size=12), min_size=0, max_size=20
).map(
    lambda keys: [
        [(statement, (key, index)) for index, statement in enumerate(statements)]
        for key, statements in enumerate(keys)
    ]
)


def runs(writes: list[Write]) -> int:
    return sum(1 for _ in groupby(writes, key=lambda write: write[0]))


@given(sequences)
def test_every_write_kept_and_each_missions_order_unchanged(per_key: list[list[Write]]) -> None:
    merged = in_runs(per_key)
    assert sorted(merged, key=repr) == sorted((w for ws in per_key for w in ws), key=repr)
    for key, writes in enumerate(per_key):
        assert [w for w in merged if w[1][0] == key] == writes


@given(sequences)
def test_never_more_runs_than_writing_them_one_mission_after_another(
    per_key: list[list[Write]],
) -> None:
    assert runs(in_runs(per_key)) <= runs([w for ws in per_key for w in ws])


def test_missions_with_the_same_pattern_share_one_run_per_statement() -> None:
    pattern = ["INSERT", "BUDGET", "BUDGET", "MOVE", "ADVANCE"]
    per_key: list[list[Write]] = [
        [(s, (key, i)) for i, s in enumerate(pattern)] for key in range(100)
    ]
    merged = in_runs(per_key)
    assert [statement for statement, _ in groupby(merged, key=lambda w: w[0])] == [
        "INSERT",
        "BUDGET",
        "MOVE",
        "ADVANCE",
    ]
