"""Replicas of each consumer service on the real stack: they share the partitions; one of
each lost for good (SIGKILL and never started again: a node gone) hands its partitions to
the others, and one of each frozen past its session (a long pause, a stalled VM) and woken
finds its partitions gone and rejoins, with missions in flight all along (the short
version of `make drills`' replica drills, bench/drills.py). And two roots answer as one:
the root keeps nothing of its own."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest

from bench.drills import CHECKS
from infra.heartbeat import live_processes
from infra.processes import free_port
from infra.stack import wait_until_ready
from infra.topics import PARTITIONS
from tests.conftest import Infrastructure
from tests.e2e.conftest import (
    AUDITOR_KEY,
    OPERATOR_KEY,
    Colony,
    RunningStack,
    start_stack,
    until,
)
from tests.fake_services import FakeModel
from tests.integration.conftest import eventually

pytestmark = pytest.mark.e2e
ORACLE: dict[str, object] = {
    "type": "oracle",
    "mode": "assisted",
    "objective": "Atlas risk?",
    "project_id": "atlas",
}
CRM: dict[str, object] = {
    "type": "crm",
    "mode": "dry_run",
    "objective": "Qualify Northwind Traders",
    "lead": {"company": "Northwind Traders", "contact": "Ana Trujillo"},
}
ASSISTED_CRM = CRM | {"mode": "assisted"}
"""Its writeback waits for an operator (a dry run's is only drafted)."""
SERVICES = ("decider", "projector", "colony")
TERMINAL = ("completed", "failed", "cancelled", "timed_out")
EVERY = list(range(PARTITIONS))
FROZEN_S = 12
"""Twice the stack's session timeout (KAFKA_SESSION_TIMEOUT_MS 6 s in the tests)."""

Shares = dict[str, list[list[int]]]


@asynccontextmanager
async def two_of_each(infrastructure: Infrastructure, log_dir: Path) -> AsyncIterator[RunningStack]:
    """A stack with two of each consumer service and a model answering in 1 s (drafts are
    in flight when a fault comes), once each service's two own half the partitions each."""
    model = FakeModel(delay_s=1.0)
    await model.start()
    stack = await start_stack(
        infrastructure, log_dir, replicas=2, COLONY_REACTORS="true", DEFAULT_MODEL_ROUTE=model.url
    )
    try:
        assert await eventually(lambda: split(stack), timeout_s=60, pause_s=0.5)
        yield stack
    finally:
        stack.supervisor.stop_all()
        await model.stop()


async def shares(database_url: str) -> Shares:
    """The partitions each live process of each consumer service owns, by service."""
    connection = await asyncpg.connect(database_url)
    try:
        processes = await live_processes(connection)
    finally:
        await connection.close()
    return {
        service: sorted(p.partitions for p in processes if p.service == service)
        for service in SERVICES
    }


async def split(stack: RunningStack) -> Shares | None:
    """The shares once each service's two processes own some partitions and all of them."""
    found = await shares(stack.slice.database_url)
    halves = all(len(owned) == 2 and all(owned) for owned in found.values())
    whole = all(sorted(p for part in owned for p in part) == EVERY for owned in found.values())
    return found if halves and whole else None


def submit(client: httpx.Client, bodies: tuple[Mapping[str, object], ...]) -> list[str]:
    return [client.post("/missions", json=body).json()["mission_id"] for body in bodies]


async def finished(client: httpx.Client, mission_ids: list[str]) -> list[dict[str, str]]:
    def terminal() -> list[dict[str, str]] | None:
        found = [client.get(f"/missions/{m}").json() for m in mission_ids]
        return found if all(m.get("status") in TERMINAL for m in found) else None

    return await until(terminal, timeout_s=150)


async def ledger_faults(database_url: str) -> dict[str, int]:
    """The drills' counts over the archive: events recorded twice, gaps, tasks run again."""
    connection = await asyncpg.connect(database_url)
    try:
        return {name: int(await connection.fetchval(query)) for name, query in CHECKS.items()}
    finally:
        await connection.close()


def second_replicas(stack: RunningStack) -> list[subprocess.Popen[bytes]]:
    processes = [stack.supervisor.service(f"{name}-2").process for name in SERVICES]
    assert all(processes)
    return [p for p in processes if p is not None]


async def console_session(root_url: str) -> httpx.Cookies:
    """An auditor's console session, signed in with a plain HTTP client: its cookies."""
    async with httpx.AsyncClient(base_url=root_url, timeout=10) as browser:
        form = await browser.get("/console/login")
        token = re.search(r'name="login_token" value="([^"]+)"', form.text)
        assert token
        login = {"key": AUDITOR_KEY, "login_token": token.group(1)}
        assert (await browser.post("/console/login", data=login)).status_code == 303
        return browser.cookies


async def console_health(stack: RunningStack) -> str:
    """The console's Health page as an auditor signed in with a plain HTTP client sees it."""
    cookies = await console_session(stack.root_url)
    async with httpx.AsyncClient(base_url=stack.root_url, cookies=cookies, timeout=10) as browser:
        page = await browser.get("/console/health")
    assert page.status_code == 200
    return page.text


@asynccontextmanager
async def second_root(stack: RunningStack) -> AsyncIterator[RunningStack]:
    """Another root process on the same stack (as a second replica behind a balancer
    would be), stopped afterwards: the stack as seen through it."""
    port = free_port()
    root = dataclasses.replace(
        stack.supervisor.service("root"),
        name="root-2",
        url=f"http://127.0.0.1:{port}",
        settings={"ROOT_PORT": str(port)},
        process=None,
    )
    root.start(stack.supervisor.env, stack.log_dir)
    try:
        assert await asyncio.to_thread(wait_until_ready, str(root.url), 60)
        yield dataclasses.replace(stack, root_url=str(root.url))
    finally:
        root.stop()


def not_completed(missions: list[dict[str, str]]) -> dict[str, str]:
    return {m["mission_id"]: m["failure_reason"] for m in missions if m["status"] != "completed"}


async def test_a_lost_replica_of_each_service_hands_its_partitions_on_and_loses_no_mission(
    infrastructure: Infrastructure, tmp_path: Path
) -> None:
    async with two_of_each(infrastructure, tmp_path) as stack:
        with stack.client() as client:
            before = submit(client, (ORACLE, CRM) * 6)
            await until(
                lambda: client.get(f"/missions/{before[0]}").json()["status"] != "requested"
            )
            for process in second_replicas(stack):
                process.send_signal(signal.SIGKILL)
                await asyncio.to_thread(process.wait)
            missions = await finished(client, before + submit(client, (ORACLE, CRM)))

            async def survivors_own_all() -> Shares | None:
                found = await shares(stack.slice.database_url)
                return found if all(owned == [EVERY] for owned in found.values()) else None

            assert await eventually(survivors_own_all, timeout_s=30, pause_s=0.5)
            ready = client.get("/readyz")
        faults = await ledger_faults(stack.slice.database_url)
    assert not not_completed(missions), not_completed(missions)
    assert faults["duplicated"] == 0 and faults["gaps"] == 0, faults
    assert ready.status_code == 200, ready.text


async def test_a_replica_frozen_past_its_session_wakes_rejoins_and_raises_no_false_alarm(
    infrastructure: Infrastructure, tmp_path: Path
) -> None:
    async with two_of_each(infrastructure, tmp_path) as stack:
        frozen = second_replicas(stack)
        with stack.client() as client:
            before = submit(client, (ORACLE, CRM) * 6)
            await until(
                lambda: client.get(f"/missions/{before[0]}").json()["status"] != "requested"
            )
            for process in frozen:
                process.send_signal(signal.SIGSTOP)
            await asyncio.sleep(FROZEN_S)  # their partitions move to the first replicas
            for process in frozen:
                process.send_signal(signal.SIGCONT)
            missions = await finished(client, before + submit(client, (ORACLE, CRM)))
            found = await eventually(lambda: split(stack), timeout_s=60, pause_s=0.5)
            ready = client.get("/readyz")
        health = await console_health(stack)
        faults = await ledger_faults(stack.slice.database_url)
        running = [process.poll() is None for process in frozen]
    woken_projector = (tmp_path / "projector-2.log").read_text()
    assert not not_completed(missions), not_completed(missions)
    assert faults["duplicated"] == 0 and faults["gaps"] == 0, faults
    assert ready.status_code == 200, ready.text
    assert running == [True, True, True]  # woken, each rejoined (`split` above) and runs on
    assert "beyond its end" not in woken_projector  # no "broker lost records", no re-read
    for service, owned in found.items():  # the console's Health page lists who owns what
        listed = re.findall(rf'<tr data-service="{service}">.*?</tr>', health)
        assert len(listed) == 2, health
        assert all(", ".join(map(str, share)) in "".join(listed) for share in owned)


async def test_two_roots_answer_as_one(stack: RunningStack) -> None:
    """The root keeps nothing of its own: an Idempotency-Key, a console session and an
    operator's decision mean the same on another replica."""
    key = {"Idempotency-Key": f"replicas-{uuid.uuid4().hex}"}
    async with second_root(stack) as other:
        with stack.client() as first, other.client() as second:
            opened = first.post("/missions", json=ASSISTED_CRM, headers=key)
            again = second.post("/missions", json=ASSISTED_CRM, headers=key)
        mission_id = opened.json()["mission_id"]
        [writeback] = (await Colony(stack).awaiting_approval([mission_id])).values()
        decision = {"reason": "fits the ideal customer profile"}
        with stack.client(OPERATOR_KEY) as first, other.client(OPERATOR_KEY) as second:
            queue = {"mission_id": mission_id}
            await until(lambda: first.get("/approvals", params=queue).json()["pending"])
            approved = second.post(f"/approvals/{writeback}/approve", json=decision)
            repeated = first.post(f"/approvals/{writeback}/approve", json=decision)
        cookies = await console_session(stack.root_url)
        async with httpx.AsyncClient(base_url=other.root_url, cookies=cookies) as browser:
            health = await browser.get("/console/health", timeout=10)
    assert opened.status_code == again.status_code == 202, (opened.text, again.text)
    assert again.json()["mission_id"] == mission_id  # one mission, whichever root took it
    assert approved.status_code == repeated.status_code == 200, (approved.text, repeated.text)
    assert approved.json()["status"] == repeated.json()["status"] == "approved"
    assert health.status_code == 200 and 'data-testid="processes"' in health.text
