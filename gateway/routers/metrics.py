"""GET /metrics: Prometheus exposition of the root's own request counters, the levels
(active missions, approval backlog and age, projection lag, parked and set-aside records)
and the counters and histograms the projector maintains from colony.metrics. Everything
but the request counters is read from PostgreSQL at scrape time, from a bounded number of
rows, so any replica answers for the whole system and a scrape costs the same whatever
the history."""

from __future__ import annotations

import asyncio
import json
from itertools import accumulate
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.dependencies import Database
from gateway.runtime import GatewayRuntime
from infra.database import sql_list
from ledger.state import OPEN_STATUSES
from projections import queries
from projections.metric_aggregates import FAMILIES, OVERFLOW, SECONDS_BUCKETS

router = APIRouter(tags=["health"])
REGISTRY = CollectorRegistry()
HTTP_REQUESTS = Counter(
    "velocity_http_requests_total",
    "Root API requests",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "velocity_http_request_seconds", "Root API latency", ["method", "route"], registry=REGISTRY
)
DEGRADED = Counter(
    "velocity_degraded_responses_total",
    "503 answers because a dependency was down",
    ["dependency"],
    registry=REGISTRY,
)
MISSIONS_ACTIVE = Gauge(
    "velocity_missions_active",
    "Missions not yet terminal, by type and status (finished: velocity_missions_finished_total)",
    ["type", "status"],
    registry=REGISTRY,
)
APPROVALS_PENDING = Gauge(
    "velocity_approval_queue_pending", "Writebacks waiting for an operator", registry=REGISTRY
)
APPROVAL_OLDEST = Gauge(
    "velocity_approval_queue_oldest_age_seconds",
    "Age of the oldest pending approval",
    registry=REGISTRY,
)
PROJECTION_LAG = Gauge(
    "velocity_projection_lag_events",
    "Events fetched but not yet projected, per partition (from the fetch high-water mark)",
    ["partition"],
    registry=REGISTRY,
)
PARKED = Gauge(
    "velocity_projection_parked_events",
    "Events a view could not apply, parked with their mission's later events",
    ["projection"],
    registry=REGISTRY,
)
HELD = Gauge(
    "velocity_projection_held_partitions",
    "Partitions the projector holds at a record of a writer schema it does not know",
    ["partition"],
    registry=REGISTRY,
)
SET_ASIDE = Gauge(
    "velocity_ledger_set_aside_records",
    "Records of mission.events that are no link of any chain (undecodable, forged)",
    registry=REGISTRY,
)
ACTIVE = f"""
SELECT mission_type, status, count(*) AS n FROM missions
WHERE status IN ({sql_list(OPEN_STATUSES)}) GROUP BY 1, 2
"""
"""Missions not yet terminal, through the status index (`status NOT IN` the terminal
ones cost 43 ms a scrape with 300,000 missions in the view)."""


class StoredFamilies(Collector):
    """The counters and histograms the projector maintains (projections/metric_aggregates.py)
    and the dead letters, as read at the last scrape: the same on every root replica."""

    def __init__(self) -> None:
        self.counters: list[Any] = []
        self.histograms: list[Any] = []
        self.letters: list[tuple[str, str, int]] = []

    def collect(self) -> list[Metric]:
        families: list[Metric] = [self._dead_letters(), self._overflowed()]
        for family in (f for group in FAMILIES.values() for f in group):
            keys = [exported for exported, _ in family.labels]
            if family.kind == "counter":
                counter = CounterMetricFamily(family.name, family.help, labels=keys)
                for row in (r for r in self.counters if r["family"] == family.name):
                    counter.add_metric(_values(row, keys), row["value"])
                families.append(counter)
            else:
                histogram = HistogramMetricFamily(family.name, family.help, labels=keys)
                for row in (r for r in self.histograms if r["family"] == family.name):
                    histogram.add_metric(_values(row, keys), _cumulative(row), row["sum"])
                families.append(histogram)
        return families

    def _overflowed(self) -> CounterMetricFamily:
        """Samples each family counted in its overflow series: label combinations beyond
        METRICS_MAX_COUNTER_SERIES or METRICS_MAX_HISTOGRAM_SERIES (the alert
        VelocityMetricOverflow watches it)."""
        family = CounterMetricFamily(
            "velocity_metric_overflowed_samples",
            "Samples counted in a family's __overflow__ series: it holds as many label"
            " combinations as its limit allows",
            labels=["family"],
        )
        for row in self.counters:
            if _is_overflow(row):
                family.add_metric([row["family"]], row["value"])
        for row in self.histograms:
            if _is_overflow(row):
                family.add_metric([row["family"]], sum(row["bucket_counts"]))
        return family

    def _dead_letters(self) -> CounterMetricFamily:
        family = CounterMetricFamily(
            "velocity_dead_letters",
            "Records set aside to mission.deadletter, by source topic and reason",
            labels=["topic", "reason"],
        )
        for topic, reason, letters in self.letters:
            family.add_metric([topic, reason], letters)
        return family


def _is_overflow(row: Any) -> bool:
    values = json.loads(row["labels"]).values()
    return bool(values) and all(value == OVERFLOW for value in values)


def _values(row: Any, keys: list[str]) -> list[str]:
    labels = json.loads(row["labels"])
    return [str(labels.get(key, "")) for key in keys]


def _cumulative(row: Any) -> list[tuple[str, float]]:
    bounds = [*(str(b) for b in SECONDS_BUCKETS), "+Inf"]
    return list(zip(bounds, accumulate(row["bucket_counts"]), strict=True))


STORED = StoredFamilies()
REGISTRY.register(STORED)


async def refresh(runtime: GatewayRuntime) -> None:
    """Levels and stored families, each read from a bounded set of rows; the reads go
    side by side on the pool's connections (a scrape waits for the slowest, not the sum)."""
    await asyncio.gather(
        _missions(runtime.database),
        _approvals(runtime.database),
        _projector(runtime.database),
        _set_aside(runtime.database),
        _stored(runtime.database),
    )


async def _missions(db: Database) -> None:
    rows = await db.fetch(ACTIVE)
    MISSIONS_ACTIVE.clear()
    for row in rows:
        MISSIONS_ACTIVE.labels(row["mission_type"], row["status"]).set(row["n"])


async def _approvals(db: Database) -> None:
    pending, oldest_age_s = await queries.approval_backlog(db)
    APPROVALS_PENDING.set(pending)
    APPROVAL_OLDEST.set(oldest_age_s)


async def _projector(db: Database) -> None:
    heartbeats, parked = await asyncio.gather(
        db.fetch(
            "SELECT details FROM service_heartbeats WHERE service = 'projector'"
            " AND last_seen_at > now() - interval '10 seconds'"
        ),
        db.fetch("SELECT projection, count(*) AS n FROM projection_parked GROUP BY 1"),
    )
    PROJECTION_LAG.clear()
    HELD.clear()
    for row in heartbeats:
        details = json.loads(row["details"])
        for partition, lag in details.get("lag", {}).items():
            PROJECTION_LAG.labels(partition).set(lag)
        for partition in details.get("held", {}):
            HELD.labels(partition).set(1)
    PARKED.clear()
    for row in parked:
        PARKED.labels(row["projection"]).set(row["n"])


async def _set_aside(db: Database) -> None:
    SET_ASIDE.set(await db.fetchval("SELECT count(*) FROM ledger_set_aside"))


async def _stored(db: Database) -> None:
    letters, STORED.counters, STORED.histograms = await asyncio.gather(
        db.fetch("SELECT source_topic, reason, letters AS n FROM dead_letter_counts"),
        db.fetch("SELECT family, labels, value FROM metric_counters"),
        db.fetch("SELECT family, labels, bucket_counts, sum FROM metric_histograms"),
    )
    STORED.letters = [(row["source_topic"], row["reason"], row["n"]) for row in letters]


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus text format."""
    runtime: GatewayRuntime = request.app.state.runtime
    await refresh(runtime)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
