"""GET /metrics: Prometheus exposition of the root's own counters and the projections'
operational numbers (missions by type and status, approval backlog and age, projector lag,
policy decisions), read at scrape time so they are right on any number of replicas."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from gateway.runtime import GatewayRuntime

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
MISSIONS = Gauge(
    "velocity_missions", "Missions by type and status", ["type", "status"], registry=REGISTRY
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
POLICY_DECISIONS = Gauge(
    "velocity_policy_decisions",
    "Policy decisions by rule and outcome",
    ["rule_id", "decision"],
    registry=REGISTRY,
)
PROVIDER_CALLS = Gauge(
    "velocity_provider_calls_last_hour",
    "Provider calls in the last hour",
    ["provider"],
    registry=REGISTRY,
)
PROVIDER_FAILURE_RATE = Gauge(
    "velocity_provider_failure_rate",
    "Share of failed provider calls in the last hour",
    ["provider"],
    registry=REGISTRY,
)
PROVIDER_LATENCY = Gauge(
    "velocity_provider_latency_ms",
    "Provider call latency over the last hour",
    ["provider", "quantile"],
    registry=REGISTRY,
)
STAGE_LATENCY = Gauge(
    "velocity_stage_latency_ms",
    "Time missions spend in each stage",
    ["stage", "quantile"],
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


class DeadLetterTotals(Collector):
    """`velocity_dead_letters_total{topic,reason}`: a counter read from the dead letters
    view at scrape time (letters are never deleted, so it only grows)."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, int]] = []

    def collect(self) -> list[CounterMetricFamily]:
        family = CounterMetricFamily(
            "velocity_dead_letters",
            "Records set aside to mission.deadletter, by source topic and reason",
            labels=["topic", "reason"],
        )
        for topic, reason, letters in self.rows:
            family.add_metric([topic, reason], letters)
        return [family]


DEAD_LETTERS = DeadLetterTotals()
REGISTRY.register(DEAD_LETTERS)
MISSION_OUTCOMES = Gauge(
    "velocity_mission_outcomes",
    "Finished missions by type and outcome",
    ["type", "outcome"],
    registry=REGISTRY,
)


async def refresh_rollups(runtime: GatewayRuntime) -> None:
    """Provider health, stage latency and outcomes from the rollup views."""
    db = runtime.database
    for gauge in (PROVIDER_CALLS, PROVIDER_FAILURE_RATE, PROVIDER_LATENCY, STAGE_LATENCY):
        gauge.clear()
    for row in await db.fetch("SELECT * FROM provider_health"):
        PROVIDER_CALLS.labels(row["provider"]).set(row["calls"])
        PROVIDER_FAILURE_RATE.labels(row["provider"]).set(float(row["failure_rate"]))
        PROVIDER_LATENCY.labels(row["provider"], "0.5").set(row["p50_ms"])
        PROVIDER_LATENCY.labels(row["provider"], "0.99").set(row["p99_ms"])
    for row in await db.fetch("SELECT * FROM stage_latency"):
        for column, quantile in (("p50", "0.5"), ("p95", "0.95"), ("p99", "0.99")):
            STAGE_LATENCY.labels(row["stage"], quantile).set(row[f"{column}_ms"])
    MISSION_OUTCOMES.clear()
    for row in await db.fetch("SELECT * FROM mission_outcomes"):
        MISSION_OUTCOMES.labels(row["mission_type"], row["outcome"]).set(row["missions"])


async def refresh(runtime: GatewayRuntime) -> None:
    db = runtime.database
    MISSIONS.clear()
    for row in await db.fetch(
        "SELECT mission_type, status, count(*) AS n FROM missions GROUP BY 1, 2"
    ):
        MISSIONS.labels(row["mission_type"], row["status"]).set(row["n"])
    backlog = await db.fetchrow(
        "SELECT count(*) AS n, coalesce(extract(epoch FROM now() - min(requested_at)), 0) AS age"
        " FROM approvals WHERE status = 'pending'"
    )
    if backlog is not None:
        APPROVALS_PENDING.set(backlog["n"])
        APPROVAL_OLDEST.set(float(backlog["age"]))
    PROJECTION_LAG.clear()
    HELD.clear()
    for row in await db.fetch(
        "SELECT details FROM service_heartbeats WHERE service = 'projector'"
        " AND last_seen_at > now() - interval '10 seconds'"
    ):
        details = json.loads(row["details"])
        for partition, lag in details.get("lag", {}).items():
            PROJECTION_LAG.labels(partition).set(lag)
        for partition in details.get("held", {}):
            HELD.labels(partition).set(1)
    PARKED.clear()
    for row in await db.fetch("SELECT projection, count(*) AS n FROM projection_parked GROUP BY 1"):
        PARKED.labels(row["projection"]).set(row["n"])
    SET_ASIDE.set(await db.fetchval("SELECT count(*) FROM ledger_set_aside"))
    DEAD_LETTERS.rows = [
        (row["source_topic"], row["reason"], row["n"])
        for row in await db.fetch(
            "SELECT source_topic, reason, count(*) AS n FROM dead_letters GROUP BY 1, 2"
        )
    ]
    POLICY_DECISIONS.clear()
    for row in await db.fetch(
        "SELECT rule_id, decision, count(*) AS n FROM policy_decisions GROUP BY 1, 2"
    ):
        POLICY_DECISIONS.labels(row["rule_id"], row["decision"]).set(row["n"])


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus text format."""
    runtime: GatewayRuntime = request.app.state.runtime
    await refresh(runtime)
    await refresh_rollups(runtime)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
