"""Replicas of each consumer service on the real stack: they share the partitions, and one
of each lost for good (SIGKILL and never started again: a node gone) hands its partitions
to the others, with missions in flight on them. The short version of `make drills`'
replica drills (bench/drills.py)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import asyncpg
import pytest

from bench.drills import CHECKS
from infra.heartbeat import live_instances
from infra.topics import PARTITIONS
from tests.conftest import Infrastructure
from tests.e2e.conftest import start_stack, until
from tests.fake_services import FakeModel
from tests.integration.conftest import eventually

pytestmark = pytest.mark.e2e
ORACLE = {"type": "oracle", "mode": "assisted", "objective": "Atlas risk?", "project_id": "atlas"}
CRM = {
    "type": "crm",
    "mode": "dry_run",
    "objective": "Qualify Northwind Traders",
    "lead": {"company": "Northwind Traders", "contact": "Ana Trujillo"},
}
SERVICES = ("decider", "projector", "colony")
TERMINAL = ("completed", "failed", "cancelled", "timed_out")


async def shares(database_url: str) -> dict[str, list[list[int]]]:
    """The partitions each live instance of each consumer service owns, by service."""
    connection = await asyncpg.connect(database_url)
    try:
        return {
            service: sorted(
                sorted(details.get("partitions", []))
                for details in await live_instances(connection, service)
            )
            for service in SERVICES
        }
    finally:
        await connection.close()


async def ledger_faults(database_url: str) -> dict[str, int]:
    """The drills' counts over the archive: events recorded twice, gaps, tasks run again."""
    connection = await asyncpg.connect(database_url)
    try:
        return {name: int(await connection.fetchval(query)) for name, query in CHECKS.items()}
    finally:
        await connection.close()


async def test_a_lost_replica_of_each_service_hands_its_partitions_on_and_loses_no_mission(
    infrastructure: Infrastructure, tmp_path: Path
) -> None:
    model = FakeModel(delay_s=1.0)  # drafts are in flight when the replicas go
    await model.start()
    stack = await start_stack(
        infrastructure, tmp_path, replicas=2, COLONY_REACTORS="true", DEFAULT_MODEL_ROUTE=model.url
    )
    database_url = stack.slice.database_url
    try:
        every = list(range(PARTITIONS))

        async def split() -> dict[str, list[list[int]]] | None:
            found = await shares(database_url)
            halves = all(len(owned) == 2 and all(owned) for owned in found.values())
            whole = all(
                sorted(p for part in owned for p in part) == every for owned in found.values()
            )
            return found if halves and whole else None

        assert await eventually(split, timeout_s=60, pause_s=0.5)
        with stack.client() as client:
            before = [
                client.post("/missions", json=body).json()["mission_id"]
                for body in (ORACLE, CRM) * 6
            ]
            await until(lambda: model.calls >= 4)  # missions are mid-flight
            for name in SERVICES:
                lost = stack.supervisor.service(f"{name}-2").process
                assert lost is not None
                lost.send_signal(signal.SIGKILL)
                await asyncio.to_thread(lost.wait)
            after = [
                client.post("/missions", json=body).json()["mission_id"] for body in (ORACLE, CRM)
            ]

            def finished() -> list[dict[str, str]] | None:
                found = [client.get(f"/missions/{m}").json() for m in before + after]
                return found if all(m.get("status") in TERMINAL for m in found) else None

            missions = await until(finished, timeout_s=150)

            async def survivors_own_all() -> dict[str, list[list[int]]] | None:
                found = await shares(database_url)
                return found if all(owned == [every] for owned in found.values()) else None

            assert await eventually(survivors_own_all, timeout_s=30, pause_s=0.5)
            ready = client.get("/readyz")
        faults = await ledger_faults(database_url)
    finally:
        stack.supervisor.stop_all()
        await model.stop()
    not_completed = {
        m["mission_id"]: m["failure_reason"] for m in missions if m["status"] != "completed"
    }
    assert not not_completed, not_completed
    assert faults["duplicated"] == 0 and faults["gaps"] == 0, faults
    assert ready.status_code == 200, ready.text
