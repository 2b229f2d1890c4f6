"""The console's dashboards evaluate the Grafana panels' PromQL against a registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway.console.dashboards import evaluate, load, samples, samples_of_text


def registry() -> CollectorRegistry:
    reg = CollectorRegistry()
    missions = Gauge("velocity_missions_active", "m", ["type", "status"], registry=reg)
    missions.labels("crm", "running").set(3)
    missions.labels("oracle", "running").set(4)
    missions.labels("crm", "awaiting_approval").set(2)
    calls = Counter("velocity_provider_calls", "c", ["provider", "outcome"], registry=reg)
    calls.labels("model", "ok").inc(6)
    calls.labels("model", "error").inc(2)
    latency = Histogram(
        "velocity_http_request_seconds", "l", ["route"], registry=reg, buckets=(0.1, 1.0)
    )
    for value in (0.05, 0.05, 0.5, 0.5):
        latency.labels("/missions").observe(value)
    return reg


def test_selectors_matchers_and_aggregations() -> None:
    data = samples(registry())
    assert evaluate(
        'sum by (type) (velocity_missions_active{status="awaiting_approval"})', data
    ) == {(("type", "crm"),): 2.0}
    assert evaluate("sum by (status) (velocity_missions_active)", data) == {
        (("status", "awaiting_approval"),): 2.0,
        (("status", "running"),): 7.0,
    }
    assert evaluate('sum(rate(velocity_provider_calls_total{outcome!="ok"}[5m]))', data) == {
        (): 2.0
    }


def test_a_ratio_of_rates_is_the_ratio_of_the_totals() -> None:
    data = samples(registry())
    ratio = evaluate(
        'sum by (provider) (rate(velocity_provider_calls_total{outcome!="ok"}[10m]))'
        " / sum by (provider) (rate(velocity_provider_calls_total[10m]))",
        data,
    )
    assert ratio == {(("provider", "model"),): 0.25}


def test_histogram_quantile_interpolates_within_the_bucket() -> None:
    data = samples(registry())
    p50 = evaluate(
        "histogram_quantile(0.5,"
        " sum by (le, route) (rate(velocity_http_request_seconds_bucket[5m])))",
        data,
    )
    assert p50 == {(("route", "/missions"),): 0.1}


def test_the_four_seed_dashboards_load_with_every_panel_and_another_process_samples() -> None:
    colony = samples_of_text(
        "# TYPE velocity_provider_breaker_open gauge\n"
        'velocity_provider_breaker_open{provider="model"} 1.0\n'
    )
    boards = load(registry(), colony)
    assert [b.name for b in boards] == [
        "mission_health",
        "policy_blocks",
        "provider_health",
        "approval_backlog",
    ]
    active = boards[0].panels[0]
    assert active.title == "Active missions by type and status"
    assert {s.label for s in active.series} >= {"status=running, type=crm"}
    assert max(s.share for s in active.series) == 100
    breakers = next(p for p in boards[2].panels if p.title == "Open circuit breakers")
    assert [(s.label, s.value) for s in breakers.series] == [("provider=model", 1.0)]
    failure = next(p for p in boards[2].panels if p.title == "Provider failure rate")
    assert [s.value for s in failure.series] == [0.25]
