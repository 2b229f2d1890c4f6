"""Metric aggregates: every sample of colony.metrics stored once and counted once into
Prometheus-native families (counters and histograms), as it arrives.

Why here and not at scrape time: the root used to recompute rollups from every stored
sample on each scrape, which grows with history. The projector already applies each
record exactly once (offsets in the same transaction); one statement per sample inserts
it into `metric_samples` (keyed by its metric id, so a re-sent sample is a no-op) and,
only if that insert happened, adds it to its families. /metrics then reads a few rows.

We chose this over faust-streaming's windowed tables: faust's table updates are
at-least-once (DESIGN.md measured it re-applying a batch after a crash), which would
double-count; here the counters move in the same transaction as the offsets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from ledger.metrics import Metric, MetricName
from projections.projection import Projected, Projection, Write

SECONDS_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0, 900.0, 1800.0, 3600.0, 14400.0, 86400.0,
)  # fmt: skip
"""Upper bounds of every histogram: sub-10 ms provider calls to day-long approval waits."""


@dataclass(frozen=True)
class Family:
    """A Prometheus metric family fed by one kind of sample."""

    name: str
    kind: Literal["counter", "histogram"]
    help: str
    labels: tuple[tuple[str, str], ...]
    """(exported label, sample label) pairs."""

    def labels_of(self, metric: Metric) -> str:
        return json.dumps(
            {exported: metric.labels.get(key, "") for exported, key in self.labels},
            sort_keys=True,
        )


FAMILIES: dict[MetricName, tuple[Family, ...]] = {
    "provider_call": (
        Family(
            "velocity_provider_calls",
            "counter",
            "Provider calls by provider, operation and outcome (ok, error, timeout, circuit_open)",
            (("provider", "provider"), ("operation", "operation"), ("outcome", "outcome")),
        ),
        Family(
            "velocity_provider_call_duration_seconds",
            "histogram",
            "Provider call latency",
            (("provider", "provider"), ("operation", "operation")),
        ),
    ),
    "stage_latency": (
        Family(
            "velocity_stage_duration_seconds",
            "histogram",
            "Time missions spent in a stage, observed when they leave it",
            (("type", "mission_type"), ("stage", "stage")),
        ),
    ),
    "mission_outcome": (
        Family(
            "velocity_missions_finished",
            "counter",
            "Missions that reached a terminal status, by type and outcome",
            (("type", "mission_type"), ("outcome", "outcome")),
        ),
    ),
    "mission_duration": (
        Family(
            "velocity_mission_duration_seconds",
            "histogram",
            "Request to terminal status, by type and outcome",
            (("type", "mission_type"), ("outcome", "outcome")),
        ),
    ),
    "policy_decision": (
        Family(
            "velocity_policy_decisions",
            "counter",
            "Tool requests decided by policy, by rule and decision",
            (("rule_id", "rule_id"), ("decision", "decision")),
        ),
    ),
    "approval_wait": (
        Family(
            "velocity_approval_wait_seconds",
            "histogram",
            "Proposed writeback to the operator's decision",
            (("type", "mission_type"),),
        ),
    ),
    "mcp_call": (
        Family(
            "velocity_mcp_calls",
            "counter",
            "MCP tool calls on the root, by tool, caller and outcome (ok, refused:<code>)",
            (("tool", "tool"), ("caller", "caller"), ("outcome", "outcome")),
        ),
    ),
}

UPSERT = """
WITH fresh AS (
    INSERT INTO metric_samples (metric_id, name, value, labels, mission_id, trace_id, recorded_at)
    VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7) ON CONFLICT (metric_id) DO NOTHING
    RETURNING metric_id
), counted AS (
    INSERT INTO metric_counters (family, labels, value)
    SELECT $8, $9::jsonb, 1 FROM fresh WHERE $8::text IS NOT NULL
    ON CONFLICT (family, labels) DO UPDATE SET value = metric_counters.value + 1
    RETURNING 1
)
INSERT INTO metric_histograms (family, labels, bucket_counts, count, sum)
SELECT $10, $11::jsonb, $12::bigint[], 1, $13 FROM fresh WHERE $10::text IS NOT NULL
ON CONFLICT (family, labels) DO UPDATE SET
    bucket_counts = (SELECT array_agg(a + b ORDER BY i)
                     FROM unnest(metric_histograms.bucket_counts, EXCLUDED.bucket_counts)
                          WITH ORDINALITY AS t(a, b, i)),
    count = metric_histograms.count + 1,
    sum = metric_histograms.sum + EXCLUDED.sum
"""


def one_hot(seconds: float) -> list[int]:
    """The sample as bucket counts: 1 in the first bucket whose bound holds it (+Inf last)."""
    index = next((i for i, bound in enumerate(SECONDS_BUCKETS) if seconds <= bound), None)
    counts = [0] * (len(SECONDS_BUCKETS) + 1)
    counts[len(SECONDS_BUCKETS) if index is None else index] = 1
    return counts


class MetricAggregatesProjection(Projection[Metric]):
    """Projection `metric_samples`: samples once, and their counters and histograms."""

    name = "metric_samples"
    tables: tuple[str, ...] = ("metric_samples", "metric_counters", "metric_histograms")

    def writes(self, item: Projected[Metric]) -> list[Write]:
        metric = item.event
        families = FAMILIES.get(metric.name, ())
        counter = next((f for f in families if f.kind == "counter"), None)
        histogram = next((f for f in families if f.kind == "histogram"), None)
        seconds = metric.value / 1000
        args = (
            metric.metric_id,
            metric.name,
            metric.value,
            json.dumps(metric.labels),
            metric.mission_id,
            metric.trace_id,
            metric.recorded_at,
            counter.name if counter else None,
            counter.labels_of(metric) if counter else "{}",
            histogram.name if histogram else None,
            histogram.labels_of(metric) if histogram else "{}",
            one_hot(seconds),
            seconds,
        )
        return [(UPSERT, args)]
