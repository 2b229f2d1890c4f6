"""Runbook drills (docs/runbooks.md) on the real stack: each causes its failure, checks
what the runbook says an operator sees, then does the runbook's "Do" steps and checks the
system recovers. The other three runbooks are drilled beside the code they exercise:
root-to-colony authentication in test_keys.py, provider outage in test_colony.py,
malformed contract payload in tests/integration/test_hostile_records.py."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import OPERATOR_KEY, RunningStack, until
from tests.e2e.test_colony import CRM, ORACLE, status_is

pytestmark = pytest.mark.e2e


def colony_of(stack: RunningStack) -> Any:
    return stack.supervisor.service("colony")


def readyz(stack: RunningStack) -> httpx.Response:
    return httpx.get(f"{stack.root_url}/readyz", timeout=10)


def colony_failing(stack: RunningStack) -> dict[str, Any] | None:
    answer = readyz(stack)
    return (
        answer.json()
        if answer.status_code == 503 and "colony" in answer.json()["failing"]
        else None
    )


def ready(stack: RunningStack) -> bool:
    return readyz(stack).status_code == 200


def metric(stack: RunningStack, name: str) -> float:
    lines = httpx.get(f"{stack.root_url}/metrics", timeout=10).text.splitlines()
    return float(next(line for line in lines if line.startswith(name + " ")).split()[-1])


async def test_colony_service_unavailable(colony_stack: RunningStack) -> None:
    colony = colony_of(colony_stack)
    await asyncio.to_thread(colony.stop)
    try:
        seen = await until(lambda: colony_failing(colony_stack), 30)
        assert "colony unreachable" in seen["checks"]["colony"]["detail"]
        with colony_stack.client() as client:
            accepted = client.post("/missions", json=ORACLE)
            assert accepted.status_code == 202, "intake stays open, nothing is lost"
            mission_id = accepted.json()["mission_id"]
            await asyncio.sleep(2)
            assert client.get(f"/missions/{mission_id}").json()["status"] == "requested"
            trail = client.get(f"/missions/{mission_id}/events").json()["events"]
            assert [e["event_type"] for e in trail] == ["MissionRequested"], "auditable"
    finally:
        colony.start(colony_stack.supervisor.env, colony_stack.log_dir)  # Do: restart it
    await until(lambda: ready(colony_stack), 60)
    with colony_stack.client() as client:
        done = await until(lambda: status_is(client, mission_id, "completed", "failed"), 60)
    assert done["status"] == "completed", "the waiting mission continues by itself"


async def test_approval_queue_backlog(colony_stack: RunningStack) -> None:
    with colony_stack.client() as client, colony_stack.client(OPERATOR_KEY) as operator:
        mission_id = client.post("/missions", json=CRM).json()["mission_id"]
        await until(lambda: status_is(client, mission_id, "awaiting_approval"), 60)
        await asyncio.sleep(1.1)
        assert metric(colony_stack, "velocity_approval_queue_pending") >= 1
        assert metric(colony_stack, "velocity_approval_queue_oldest_age_seconds") >= 1
        queue = operator.get("/approvals").json()["pending"]
        item = next(a for a in queue if a["mission_id"] == mission_id)
        assert item["age_seconds"] >= 1
        rejected = operator.post(
            f"/approvals/{item['approval_id']}/reject", json={"reason": "no longer wanted"}
        )
        assert rejected.status_code in (200, 202)  # Do: work the queue
        done = await until(lambda: status_is(client, mission_id, "completed", "failed"), 60)
        queue = operator.get("/approvals").json()["pending"]
    assert done["status"] == "completed", "a rejected proposal completes without writing"
    assert all(a["mission_id"] != mission_id for a in queue)


async def test_stuck_mission_in_a_non_terminal_state(colony_stack: RunningStack) -> None:
    colony = colony_of(colony_stack)
    await asyncio.to_thread(colony.stop)
    try:
        with colony_stack.client() as client:
            mission_id = client.post("/missions", json=ORACLE).json()["mission_id"]
            stuck = await until(lambda: status_is(client, mission_id, "requested"), 30)
        assert stuck["stage"] and stuck["status_since"], "what and since when"
        replayed = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "infra.cli", "ledger", "replay", "--mission", mission_id],
            capture_output=True,
            text=True,
            timeout=60,
            env=colony_stack.supervisor.env,
            check=False,
        )
        assert replayed.returncode == 0 and "MissionRequested" in replayed.stdout
        with colony_stack.client(OPERATOR_KEY) as operator:
            failed = operator.post(
                f"/missions/{mission_id}/fail", json={"reason": "colony down; replaying"}
            )
            assert failed.json()["status"] == "failed"  # Do: mark failed …
    finally:
        colony.start(colony_stack.supervisor.env, colony_stack.log_dir)
    await until(lambda: ready(colony_stack), 60)
    with colony_stack.client(OPERATOR_KEY) as operator:
        again = operator.post(f"/missions/{mission_id}/replay", json={"reason": "colony back"})
        replay_id = again.json()["mission_id"]  # … and replay once the cause is fixed
        done = await until(lambda: status_is(operator, replay_id, "completed", "failed"), 60)
    assert done["status"] == "completed" and done["replay_of"] == mission_id
