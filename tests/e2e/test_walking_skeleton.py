"""The thin path through every hop: HTTP -> command topic -> decider -> event topic ->
projector -> PostgreSQL -> HTTP, with real Avro, real topics and real PostgreSQL."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import AUDITOR_KEY, RunningStack

pytestmark = pytest.mark.e2e


def wait_for_mission(
    client: httpx.Client, mission_id: str, timeout_s: float = 2.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        response = client.get(f"/missions/{mission_id}")
        if response.status_code == 200 or time.monotonic() > deadline:
            return {"status_code": response.status_code, **response.json()}
        time.sleep(0.05)


def test_a_posted_mission_is_projected_and_read_back_within_two_seconds(
    stack: RunningStack,
) -> None:
    with stack.client() as client:
        posted = client.post(
            "/missions",
            json={
                "type": "oracle",
                "mode": "assisted",
                "objective": "  Summarise atlas risks  ",
                "project_id": "atlas",
            },
        )
        assert posted.status_code == 202, posted.text
        mission_id = posted.json()["mission_id"]
        assert posted.headers["location"] == f"/missions/{mission_id}"
        mission = wait_for_mission(client, mission_id)
    assert mission["status_code"] == 200
    assert mission["status"] == "requested"
    assert mission["last_sequence"] == 1
    assert mission["objective"] == "Summarise atlas risks"
    assert mission["time_budget_ms"] == 300_000
    assert mission["token_budget"] == 50_000
    assert mission["requested_by"] == "service:local-service"
    assert len(mission["last_hash"]) == 64


def test_the_same_idempotency_key_returns_the_same_mission(stack: RunningStack) -> None:
    body = {"type": "catalyst", "mode": "dry_run", "objective": "Q3 strategy"}
    with stack.client() as client:
        first = client.post("/missions", json=body, headers={"Idempotency-Key": "abc-1"})
        second = client.post("/missions", json=body, headers={"Idempotency-Key": "abc-1"})
        mission_id = first.json()["mission_id"]
        assert second.json()["mission_id"] == mission_id
        mission = wait_for_mission(client, mission_id)
    assert mission["last_sequence"] == 1, "a retried request must not append a second event"


def test_readiness_names_every_check_and_all_are_green(stack: RunningStack) -> None:
    ready = httpx.get(f"{stack.root_url}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"
    assert set(ready.json()["checks"]) == {
        "broker",
        "database",
        "migrations",
        "decider",
        "projector",
        "projections",
        "dead_letters",
        "colony",
    }
    assert httpx.get(f"{stack.root_url}/healthz").json() == {"status": "alive"}
    assert httpx.get(f"{stack.colony_url}/healthz").status_code == 200
    colony = httpx.get(f"{stack.colony_url}/readyz")
    assert colony.status_code == 200
    assert set(colony.json()["checks"]) == {"broker", "database", "root_auth"}


def test_bad_requests_get_problem_details(stack: RunningStack) -> None:
    with stack.client(key=None) as anonymous:
        unauthenticated = anonymous.post("/missions", json={})
    with stack.client(key=AUDITOR_KEY) as auditor:
        forbidden = auditor.post(
            "/missions",
            json={"type": "oracle", "mode": "assisted", "objective": "x", "project_id": "p"},
        )
        missing = auditor.get("/missions/does-not-exist")
    with stack.client() as client:
        invalid = client.post(
            "/missions", json={"type": "oracle", "mode": "yolo", "objective": "x"}
        )
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["content-type"] == "application/problem+json"
    assert forbidden.status_code == 403
    assert missing.status_code == 404
    assert missing.json()["type"] == "urn:velocity:problem:mission_not_found"
    assert invalid.status_code == 422
    assert invalid.json()["errors"][0]["field"] == "mode"
