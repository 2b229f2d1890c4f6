"""How a sample becomes counter and histogram increments (projections/metric_aggregates.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from ledger.metrics import Metric
from projections.metric_aggregates import (
    FAMILIES,
    SECONDS_BUCKETS,
    bucket_of,
    sample_rows,
)
from projections.projection import Projected


def test_a_sample_falls_in_the_first_bucket_that_holds_it_or_in_inf() -> None:
    assert bucket_of(0.004) == 0
    assert bucket_of(0.25) == SECONDS_BUCKETS.index(0.25)
    assert bucket_of(3.0) == SECONDS_BUCKETS.index(5.0)
    assert bucket_of(10**6) == len(SECONDS_BUCKETS)


def test_a_provider_call_feeds_its_counter_and_its_histogram_in_seconds() -> None:
    metric = Metric(
        metric_id="m1",
        name="provider_call",
        value=1500.0,
        labels={"provider": "openai", "operation": "complete", "outcome": "ok", "extra": "x"},
        recorded_at=datetime.now(UTC),
    )
    item = Projected(0, 0, None, b"", metric, "m1", "provider_call")
    [row] = json.loads(sample_rows([item]))
    assert row["counter"] == "velocity_provider_calls"
    assert row["counter_labels"] == {"provider": "openai", "operation": "complete", "outcome": "ok"}
    assert row["histogram"] == "velocity_provider_call_duration_seconds"
    assert row["histogram_labels"] == {"provider": "openai", "operation": "complete"}
    assert row["bucket"] == SECONDS_BUCKETS.index(2.5) and row["seconds"] == 1.5


def test_a_sample_sent_twice_in_one_batch_is_one_row_of_the_statement() -> None:
    def item(metric_id: str) -> Projected[Metric]:
        metric = Metric(
            metric_id=metric_id,
            name="policy_decision",
            value=1.0,
            labels={"rule_id": "r1", "decision": "allowed"},
            recorded_at=datetime.now(UTC),
        )
        return Projected(0, 0, None, b"", metric, metric_id, metric.name)

    rows = json.loads(sample_rows([item("a"), item("b"), item("a")]))
    assert [row["metric_id"] for row in rows] == ["a", "b"]
    assert [row["histogram"] for row in rows] == [None, None], (
        "a policy decision feeds no histogram"
    )


def test_every_family_follows_prometheus_naming() -> None:
    for family in (f for group in FAMILIES.values() for f in group):
        assert family.name.startswith("velocity_")
        assert not family.name.endswith("_total"), "the client adds _total to counters"
        if family.kind == "histogram":
            assert family.name.endswith("_seconds")
