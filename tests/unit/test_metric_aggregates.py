"""How a sample becomes counter and histogram increments (projections/metric_aggregates.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from ledger.metrics import Metric
from projections.metric_aggregates import (
    FAMILIES,
    SECONDS_BUCKETS,
    MetricAggregatesProjection,
    one_hot,
)
from projections.projection import Projected


def test_a_sample_falls_in_the_first_bucket_that_holds_it_or_in_inf() -> None:
    assert one_hot(0.004).index(1) == 0
    assert one_hot(0.25).index(1) == SECONDS_BUCKETS.index(0.25)
    assert one_hot(10**6).index(1) == len(SECONDS_BUCKETS)
    assert sum(one_hot(3.0)) == 1


def test_a_provider_call_feeds_its_counter_and_its_histogram_in_seconds() -> None:
    metric = Metric(
        metric_id="m1",
        name="provider_call",
        value=1500.0,
        labels={"provider": "openai", "operation": "complete", "outcome": "ok", "extra": "x"},
        recorded_at=datetime.now(UTC),
    )
    item = Projected(0, 0, None, b"", metric, "m1", "provider_call")
    [(_, args)] = MetricAggregatesProjection().writes(item)
    assert args[7] == "velocity_provider_calls"
    assert json.loads(args[8]) == {"provider": "openai", "operation": "complete", "outcome": "ok"}
    assert args[9] == "velocity_provider_call_duration_seconds"
    assert json.loads(args[10]) == {"provider": "openai", "operation": "complete"}
    assert args[11][SECONDS_BUCKETS.index(2.5)] == 1 and args[12] == 1.5


def test_every_family_follows_prometheus_naming() -> None:
    for family in (f for group in FAMILIES.values() for f in group):
        assert family.name.startswith("velocity_")
        assert not family.name.endswith("_total"), "the client adds _total to counters"
        if family.kind == "histogram":
            assert family.name.endswith("_seconds")
