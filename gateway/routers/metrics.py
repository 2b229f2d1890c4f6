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
    for row in await db.fetch(
        "SELECT details FROM service_heartbeats WHERE service = 'projector'"
        " AND last_seen_at > now() - interval '10 seconds'"
    ):
        for partition, lag in json.loads(row["details"]).get("lag", {}).items():
            PROJECTION_LAG.labels(partition).set(lag)
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
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
