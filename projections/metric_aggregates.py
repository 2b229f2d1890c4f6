"""Metric aggregates: every sample of colony.metrics stored once and counted once into
Prometheus-native families (counters and histograms), as it arrives.

Why here and not at scrape time: the root used to recompute rollups from every stored
sample on each scrape, which grows with history. The projector already applies each
record exactly once (offsets in the same transaction); one statement per batch inserts
its samples into `metric_samples` (keyed by metric id, so a re-sent sample is a no-op)
and adds those it inserted to their families, grouped per family and labels. /metrics
then reads a few rows.

We chose this over faust-streaming's windowed tables: faust's table updates are
at-least-once (DESIGN.md measured it re-applying a batch after a crash), which would
double-count; here the counters move in the same transaction as the offsets.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass
from typing import Any, Literal

import orjson

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

    def labels_of(self, metric: Metric) -> dict[str, str]:
        return {exported: metric.labels.get(key, "") for exported, key in self.labels}


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


@dataclass(frozen=True)
class SeriesLimits:
    """Label combinations a counter family and a histogram family keep
    (METRICS_MAX_COUNTER_SERIES, METRICS_MAX_HISTOGRAM_SERIES). Two limits, because a
    histogram series is 23 lines of every /metrics scrape and a counter series one;
    prometheus_client writes ~7 µs a line. The defaults are several times what the colony
    and the root send (a few dozen counter combinations, under twenty a histogram); with
    all seven families flooded, a scrape of the root was 3,324 lines, p50 27 ms and p99
    45 ms (`make run`, docs/architecture.md "Nineteenth session")."""

    counters: int = 200
    histograms: int = 25


OVERFLOW = "__overflow__"
"""The value of every label of a family's overflow series: where samples count once the
family holds its most label combinations (OpenTelemetry's SDKs do the same with an
`otel.metric.overflow` attribute; here the family's own labels say it, so a query grouping
by any of them shows it)."""

COUNT_ONCE = f"""
WITH input AS (
    SELECT * FROM jsonb_to_recordset($1::jsonb) AS sample(
        metric_id text, name text, value float8, labels jsonb, mission_id text, trace_id text,
        recorded_at timestamptz, counter text, counter_labels jsonb, histogram text,
        histogram_labels jsonb, bucket int, seconds float8)
), fresh AS (
    INSERT INTO metric_samples (metric_id, name, value, labels, mission_id, trace_id, recorded_at)
    SELECT metric_id, name, value, labels, mission_id, trace_id, recorded_at FROM input
    ON CONFLICT (metric_id) DO NOTHING
    RETURNING metric_id
), stored AS (
    SELECT input.* FROM input JOIN fresh USING (metric_id)
), series AS (
    SELECT counter AS family, counter_labels AS labels, $3::int AS places
    FROM stored WHERE counter IS NOT NULL
    UNION
    SELECT histogram, histogram_labels, $4::int FROM stored WHERE histogram IS NOT NULL
), known AS (
    SELECT family, labels FROM metric_counters
    UNION ALL
    SELECT family, labels FROM metric_histograms
), ranked AS (
    SELECT series.family, series.labels, series.places, known.family IS NOT NULL AS kept,
           row_number() OVER (PARTITION BY series.family, known.family IS NULL
                              ORDER BY series.labels) AS newcomer
    FROM series LEFT JOIN known
         ON known.family = series.family AND known.labels = series.labels
), placed AS (
    SELECT family, labels,
           CASE WHEN kept THEN labels
                WHEN newcomer + (SELECT count(*) FROM known WHERE known.family = ranked.family)
                     <= places THEN labels
                ELSE coalesce((SELECT jsonb_object_agg(name, '{OVERFLOW}')
                               FROM jsonb_object_keys(labels) AS name), '{{}}')
           END AS counted_as
    FROM ranked
), counted AS (
    INSERT INTO metric_counters (family, labels, value)
    SELECT counter, counted_as, count(*)
    FROM stored JOIN placed ON placed.family = counter AND placed.labels = counter_labels
    GROUP BY 1, 2
    ON CONFLICT (family, labels) DO UPDATE SET value = metric_counters.value + EXCLUDED.value
), observed AS (
    SELECT histogram AS family, counted_as AS labels, array_agg(bucket) AS buckets,
           count(*) AS count, sum(seconds) AS sum
    FROM stored JOIN placed ON placed.family = histogram AND placed.labels = histogram_labels
    GROUP BY 1, 2
)
INSERT INTO metric_histograms (family, labels, bucket_counts, count, sum)
SELECT family, labels,
       ARRAY(SELECT cardinality(array_positions(buckets, slot))
             FROM generate_series(0, $2::int) AS slot ORDER BY slot),
       count, sum
FROM observed
ON CONFLICT (family, labels) DO UPDATE SET
    bucket_counts = (SELECT array_agg(a + b ORDER BY i)
                     FROM unnest(metric_histograms.bucket_counts, EXCLUDED.bucket_counts)
                          WITH ORDINALITY AS t(a, b, i)),
    count = metric_histograms.count + EXCLUDED.count,
    sum = metric_histograms.sum + EXCLUDED.sum
"""
"""A batch of samples in one statement: each stored once (keyed by its metric id), and
only those stored now counted, grouped by family and labels (one increment a row, not one
a sample). `$1` is the batch as one JSON array of samples (`sample_rows`): written by orjson
in C, where thirteen array parameters cost asyncpg ~20 Python-level type checks a sample
(a third of the projector's time on metrics). `bucket` is the index of the sample's bucket,
`$2` the last index (+Inf): a histogram row's increment counts the batch's samples in each
bucket. `$3` and `$4` are how many label combinations a counter and a histogram family
keep (`SeriesLimits`): a sample of a new combination beyond them counts in the family's
`OVERFLOW` series instead, so a producer writing endless label values (any holder of
produce rights on colony.metrics can) grows neither the tables nor every scrape. Two
projectors counting different partitions at once may each take a family's last places:
the bound is loose by a batch's newcomers."""


def bucket_of(seconds: float) -> int:
    """The index of the first bucket whose bound holds `seconds` (+Inf, the last, else)."""
    return next(
        (i for i, bound in enumerate(SECONDS_BUCKETS) if seconds <= bound), len(SECONDS_BUCKETS)
    )


class MetricAggregatesProjection(Projection[Metric]):
    """Projection `metric_samples`: samples once, and their counters and histograms.

    A batch is one statement (`COUNT_ONCE`): at ten samples a mission, a statement a
    sample was the largest share of PostgreSQL's time under load, each sample updating
    the same few counter and histogram rows again."""

    name = "metric_samples"
    tables: tuple[str, ...] = ("metric_samples", "metric_counters", "metric_histograms")

    def __init__(self, limits: SeriesLimits) -> None:
        self.limits = limits

    def writes(self, item: Projected[Metric]) -> list[Write]:
        return []

    def batch_writes(self, items: list[Projected[Metric]]) -> list[Write]:
        if not items:
            return []
        arguments = (sample_rows(items), len(SECONDS_BUCKETS), *astuple(self.limits))
        return [(COUNT_ONCE, arguments)]


def sample_rows(items: list[Projected[Metric]]) -> str:
    """`COUNT_ONCE`'s batch for a non-empty batch: a JSON array with a row per distinct
    sample (the first of a metric id sent twice in the batch; the statement skips ids
    already stored), each with the families it feeds and its bucket."""
    first: dict[str, Metric] = {}
    for item in items:
        first.setdefault(item.event.metric_id, item.event)
    return orjson.dumps([sample_row(metric) for metric in first.values()]).decode()


def sample_row(metric: Metric) -> dict[str, Any]:
    """The sample's fields, the counter and histogram it feeds (with their labels), and
    its bucket and value in seconds. Its value is finite (the model refuses others), which
    JSON needs."""
    families = FAMILIES.get(metric.name, ())
    counter = next((f for f in families if f.kind == "counter"), None)
    histogram = next((f for f in families if f.kind == "histogram"), None)
    seconds = metric.value / 1000
    return {
        "metric_id": metric.metric_id,
        "name": metric.name,
        "value": metric.value,
        "labels": metric.labels,
        "mission_id": metric.mission_id,
        "trace_id": metric.trace_id,
        "recorded_at": metric.recorded_at,
        "counter": counter.name if counter else None,
        "counter_labels": counter.labels_of(metric) if counter else {},
        "histogram": histogram.name if histogram else None,
        "histogram_labels": histogram.labels_of(metric) if histogram else {},
        "bucket": bucket_of(seconds),
        "seconds": seconds,
    }
