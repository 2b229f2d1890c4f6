"""The colony's /status answers only the root, which presents COLONY_SERVICE_API_KEY."""

from __future__ import annotations

from fastapi.testclient import TestClient
from pydantic import SecretStr

from colony_consumers.service import create_app
from colony_consumers.settings import ColonySettings


def client() -> TestClient:
    settings = ColonySettings(COLONY_SERVICE_API_KEY=SecretStr("root-to-colony"))
    app = create_app(settings, {}, lambda: {"partitions": [0, 1], "missions_open": 2})
    return TestClient(app)


def test_status_needs_the_colony_service_key() -> None:
    with client() as http:
        missing = http.get("/status")
        wrong = http.get("/status", headers={"Authorization": "Bearer nope"})
        right = http.get("/status", headers={"Authorization": "Bearer root-to-colony"})
    assert missing.status_code == 401 and wrong.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"
    assert right.status_code == 200 and right.json()["missions_open"] == 2


def test_health_is_open() -> None:
    with client() as http:
        assert http.get("/healthz").json() == {"status": "alive"}
