"""Our own infrastructure blinking under load, on the real stack: a PostgreSQL restart in the
middle of running missions fails none of them (the short version of `make drills`)."""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path

import pytest

from infra.postgres import start_postgres
from infra.processes import free_port
from tests.conftest import Infrastructure, Isolated
from tests.e2e.conftest import start_stack, until
from tests.fake_services import FakeModel

pytestmark = pytest.mark.e2e
ORACLE = {"type": "oracle", "mode": "assisted", "objective": "Atlas risk?", "project_id": "atlas"}
CRM = {
    "type": "crm",
    "mode": "dry_run",
    "objective": "Qualify Northwind Traders",
    "lead": {"company": "Northwind Traders", "contact": "Ana Trujillo"},
}
OUTAGE_S = 8


async def test_a_database_restart_under_load_fails_no_mission(
    infrastructure: Infrastructure, tmp_path: Path
) -> None:
    port = free_port()
    database = await asyncio.to_thread(
        start_postgres, tmp_path, tmp_path / "pg.log", durable=False, port=port
    )
    slice_ = Isolated(infrastructure.bootstrap_servers, database.url, f"o{uuid.uuid4().hex[:8]}.")
    (tmp_path / "logs").mkdir()
    model = FakeModel(delay_s=2.0)  # drafts are in flight when the database goes
    await model.start()
    stack = await start_stack(
        infrastructure,
        tmp_path / "logs",
        slice_,
        COLONY_REACTORS="true",
        DEFAULT_MODEL_ROUTE=model.url,
    )
    try:
        with stack.client() as client:
            before = [
                client.post("/missions", json=body).json()["mission_id"]
                for body in (ORACLE, CRM) * 8
            ]
            await until(lambda: model.calls >= 4)  # missions are mid-flight
            database.stop()
            during = []
            for body in (ORACLE, CRM):
                accepted = client.post("/missions", json=body)
                assert accepted.status_code == 202, accepted.text  # intake stays open
                during.append(accepted.json()["mission_id"])
            await asyncio.sleep(OUTAGE_S)
            database = await asyncio.to_thread(
                start_postgres, tmp_path, tmp_path / "pg.log", durable=False, port=port
            )

            def finished() -> list[dict[str, str]] | None:
                found = [client.get(f"/missions/{m}").json() for m in before + during]
                terminal = ("completed", "failed", "cancelled", "timed_out")
                return found if all(m.get("status") in terminal for m in found) else None

            missions = await until(finished, timeout_s=150)
    finally:
        stack.supervisor.stop_all()
        database.stop()
        await model.stop()
    not_completed = {
        m["mission_id"]: (m["status"], m["failure_reason"])
        for m in missions
        if m["status"] != "completed"
    }
    assert not not_completed, not_completed


async def test_a_stopping_root_refuses_intake_and_fails_readiness_while_it_drains(
    infrastructure: Infrastructure, tmp_path: Path
) -> None:
    stack = await start_stack(infrastructure, tmp_path)
    root = stack.supervisor.service("root")
    try:
        assert root.process is not None
        root.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.2)
        with stack.client() as client:
            refused = client.post("/missions", json=ORACLE)
            ready = client.get("/readyz")
        assert await asyncio.to_thread(root.process.wait, 10) == 0
    finally:
        stack.supervisor.stop_all()
    assert refused.status_code == 503 and refused.headers["retry-after"]
    assert refused.json()["type"] == "urn:velocity:problem:shutting_down"
    assert ready.status_code == 503 and "draining" in ready.json()["failing"]
