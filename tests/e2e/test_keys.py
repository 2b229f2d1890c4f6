"""The root↔colony boundary with keys that do not match, as an operator would misconfigure
it: /readyz says which direction is refused (never a key), no mission is failed by it, and
`make run` refuses a configuration that would give the colony no usable key. The first
test is also the runbook drill: after the fix the runbook prescribes, the mission that
waited completes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from infra.processes import child_environment
from tests.conftest import Infrastructure
from tests.e2e.conftest import COLONY_KEY, SERVICE_KEY, start_stack, until
from tests.e2e.test_colony import status_is

pytestmark = pytest.mark.e2e
ORACLE = {"type": "oracle", "mode": "assisted", "objective": "Atlas risk?", "project_id": "atlas"}


async def readiness(url: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(f"{url}/readyz", timeout=10)


async def test_a_colony_key_the_root_refuses_is_named_and_fails_no_mission(
    infrastructure: Infrastructure, tmp_path: Path
) -> None:
    stack = await start_stack(
        infrastructure, tmp_path, ready=False, COLONY_REACTORS="true", ROOT_API_KEY=SERVICE_KEY
    )
    try:
        root = await _settled(stack.root_url)
        colony = await readiness(stack.colony_url)
        with stack.client() as client:
            mission_id = client.post("/missions", json=ORACLE).json()["mission_id"]
            await asyncio.sleep(4)
            mission = client.get(f"/missions/{mission_id}").json()
        # the runbook's Do: give the colony a colony key of the root and restart it
        service = stack.supervisor.service("colony")
        await asyncio.to_thread(service.stop)
        service.start(stack.supervisor.env | {"ROOT_API_KEY": COLONY_KEY}, tmp_path)
        with stack.client() as client:
            recovered = await until(
                lambda: status_is(client, mission_id, "completed", "failed"), 60
            )
    finally:
        stack.supervisor.stop_all()
    assert recovered["status"] == "completed", "the waiting mission continues by itself"
    assert root.status_code == 503 and root.json()["failing"] == ["colony"]
    detail = root.json()["checks"]["colony"]["detail"]
    assert "root_auth" in detail and "colony→root" in detail and "service key" in detail
    assert colony.status_code == 503 and colony.json()["failing"] == ["root_auth"]
    assert SERVICE_KEY not in root.text + colony.text
    assert mission["status"] == "requested" and mission["failure_reason"] is None


async def test_a_root_key_the_colony_refuses_is_named_with_its_direction(
    infrastructure: Infrastructure, tmp_path: Path
) -> None:
    stack = await start_stack(
        infrastructure, tmp_path, ready=False, COLONY_SERVICE_API_KEY="only-the-root-has-this"
    )
    colony = stack.supervisor.service("colony")
    colony.stop()
    colony.start(
        stack.supervisor.env | {"COLONY_SERVICE_API_KEY": "the-colony-has-another"}, tmp_path
    )
    try:
        root = await _settled(stack.root_url)
    finally:
        stack.supervisor.stop_all()
    assert root.status_code == 503
    detail = root.json()["checks"]["colony"]["detail"]
    assert detail.startswith("root→colony") and "COLONY_SERVICE_API_KEY" in detail
    assert "only-the-root-has-this" not in root.text


async def _settled(root_url: str) -> httpx.Response:
    """/readyz once everything but the colony is ready and the colony has answered (not
    merely been unreachable while starting)."""

    async def answered() -> httpx.Response | None:
        response = await readiness(root_url)
        detail = response.json()["checks"].get("colony", {}).get("detail") or ""
        settled = response.json()["failing"] == ["colony"] and "unreachable" not in detail
        return response if settled else None

    deadline = asyncio.get_running_loop().time() + 60
    while True:
        found = await answered()
        if found is not None or asyncio.get_running_loop().time() > deadline:
            assert found is not None, "the root never saw the colony answer"
            return found
        await asyncio.sleep(0.5)


def test_make_run_without_a_colony_key_refuses_with_one_line(tmp_path: Path) -> None:
    env = child_environment(
        VELOCITY_DATA_DIR=str(tmp_path),
        VELOCITY_API_KEYS="service:intake:s-key,operator:alice:o-key",
    )
    env.pop("ROOT_API_KEY", None)
    run = subprocess.run(
        [str(Path(sys.executable).with_name("velocity")), "stack", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "ROOT_API_KEY" in lines[0] and "colony:" in lines[0], run.stderr
    assert "s-key" not in run.stderr and "o-key" not in run.stderr
