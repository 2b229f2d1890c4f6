"""The console's dashboards evaluate the Grafana panels' PromQL against a registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway.console.dashboards import evaluate, load, samples


def registry() -> CollectorRegistry:
    reg = CollectorRegistry()
    missions = Gauge("velocity_missions", "m", ["type", "status"], registry=reg)
    missions.labels("crm", "completed").set(3)
    missions.labels("oracle", "completed").set(4)
    missions.labels("crm", "awaiting_approval").set(2)
    requests = Counter("velocity_http_requests_total", "r", ["status"], registry=reg)
    requests.labels("503").inc(5)
    requests.labels("200").inc(7)
    latency = Histogram(
        "velocity_http_request_seconds", "l", ["route"], registry=reg, buckets=(0.1, 1.0)
    )
    for value in (0.05, 0.05, 0.5, 0.5):
        latency.labels("/missions").observe(value)
    return reg


def test_selectors_matchers_and_aggregations() -> None:
    data = samples(registry())
    assert evaluate('sum by (type) (velocity_missions{status="awaiting_approval"})', data) == {
        (("type", "crm"),): 2.0
    }
    assert evaluate("sum by (status) (velocity_missions)", data)[(("status", "completed"),)] == 7
    assert evaluate('sum(rate(velocity_http_requests_total{status=~"5.."}[5m]))', data) == {(): 5.0}


def test_histogram_quantile_interpolates_within_the_bucket() -> None:
    data = samples(registry())
    p50 = evaluate(
        "histogram_quantile(0.5,"
        " sum by (le, route) (rate(velocity_http_request_seconds_bucket[5m])))",
        data,
    )
    assert p50 == {(("route", "/missions"),): 0.1}


def test_the_four_seed_dashboards_load_with_every_panel() -> None:
    boards = load(registry())
    assert [b.name for b in boards] == [
        "mission_health",
        "policy_blocks",
        "provider_health",
        "approval_backlog",
    ]
    health = boards[0].panels[0]
    assert health.title == "Missions by type and status"
    assert {s.label for s in health.series} >= {"status=completed, type=crm"}
    assert max(s.share for s in health.series) == 100
