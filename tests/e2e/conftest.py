"""The running stack for end-to-end tests: all four services as real processes.

Each stack gets its own database, topic prefix and consumer groups on the session's
broker and PostgreSQL, and is stopped (no process left) when its fixture ends.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from infra.config import CommonSettings
from infra.preparation import prepare_infrastructure
from infra.processes import child_environment, free_port
from infra.stack import Supervisor, wait_until_ready
from ledger.commands import (
    BeginReview,
    CommandBody,
    CompleteTask,
    PlannedTask,
    ProposeWriteback,
    RecordPlan,
    RecordReview,
    StartPlanning,
    StartTask,
)
from tests.conftest import Infrastructure, Isolated, create_database
from tests.factories import command
from tests.fake_services import FakeCollector
from tests.integration.conftest import command_sender

T = TypeVar("T")

SERVICE_KEY = "local-service-key"
COLONY_KEY = "local-colony-root-key"
OPERATOR_KEY = "local-operator-key"
AUDITOR_KEY = "local-auditor-key"


@dataclass
class RunningStack:
    root_url: str
    colony_url: str
    slice: Isolated
    supervisor: Supervisor
    log_dir: Path

    def client(self, key: str | None = SERVICE_KEY) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.root_url, headers=headers, timeout=10)

    def logs(self) -> str:
        return "\n".join(p.read_text()[-3000:] for p in sorted(self.log_dir.glob("*.log")))


async def start_stack(
    infrastructure: Infrastructure,
    log_dir: Path,
    slice_: Isolated | None = None,
    *,
    restore: bool = False,
    ready: bool = True,
    replicas: int = 1,
    **env: str,
) -> RunningStack:
    """Prepare a fresh slice (or reuse `slice_`), start the services (`replicas` of each
    consumer service), wait for /readyz (with `ready` False, only until the root answers
    /healthz: a stack expected unready)."""
    if slice_ is None:
        slice_ = Isolated(
            bootstrap_servers=infrastructure.bootstrap_servers,
            database_url=await create_database(infrastructure.admin_database_url),
            topic_prefix=f"e{uuid.uuid4().hex[:10]}.",
        )
    settings = CommonSettings(KAFKA_TOPIC_PREFIX=slice_.topic_prefix)
    await prepare_infrastructure(
        settings, slice_.bootstrap_servers, slice_.database_url, restore=restore
    )
    root_port, colony_ports = free_port(), [free_port() for _ in range(replicas)]
    colony_port = colony_ports[0]
    groups = uuid.uuid4().hex[:8]
    environment = child_environment(
        **slice_.environment(),
        VELOCITY_ENV="local",
        ROOT_PORT=str(root_port),
        PORT=str(colony_port),
        COLONY_SERVICE_BASE_URL=f"http://127.0.0.1:{colony_port}",
        ROOT_API_BASE_URL=f"http://127.0.0.1:{root_port}",
        DECIDER_GROUP_ID=f"decider-{groups}",
        PROJECTOR_GROUP_ID=f"projector-{groups}",
        COLONY_GROUP_ID=f"colony-{groups}",
        KAFKA_SESSION_TIMEOUT_MS="6000",
        LOG_FORMAT="json",
        # the root's own tests drive missions by hand (see Colony below); test_colony.py
        # turns the real reactors on
        **({"COLONY_REACTORS": "false"} | env),
    )
    supervisor = Supervisor.for_ports(environment, root_port, colony_ports, log_dir)
    supervisor.start_all()
    stack = RunningStack(
        f"http://127.0.0.1:{root_port}",
        f"http://127.0.0.1:{colony_port}",
        slice_,
        supervisor,
        log_dir,
    )
    probe = "/readyz" if ready else "/healthz"
    if not await asyncio.to_thread(wait_until_ready, stack.root_url, 60, probe):
        supervisor.stop_all()
        raise RuntimeError(f"stack not ready:\n{stack.logs()}")
    return stack


@pytest.fixture(scope="session")
async def stack(
    infrastructure: Infrastructure, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningStack]:
    """One stack with the colony's reactors off, shared by the modules that drive missions
    by hand (`Colony`) or only read and probe it: each test makes its own missions, and
    none stops a service or changes the stack's settings (those start their own)."""
    running = await start_stack(infrastructure, tmp_path_factory.mktemp("stack-logs"))
    try:
        yield running
    finally:
        running.supervisor.stop_all()


@pytest.fixture(scope="session")
async def trace_collector() -> AsyncIterator[FakeCollector]:
    """An OTLP/HTTP collector on 127.0.0.1 the shared colony stack exports its spans to."""
    collector = FakeCollector()
    await collector.start()
    try:
        yield collector
    finally:
        await collector.stop()


@pytest.fixture(scope="session")
async def colony_stack(
    infrastructure: Infrastructure,
    tmp_path_factory: pytest.TempPathFactory,
    trace_collector: FakeCollector,
) -> AsyncIterator[RunningStack]:
    """One stack with the real colony's reactors, shared by the e2e modules that drive
    whole missions (each test makes its own missions; a drill that stops a service starts
    it again before it ends). Its services export their spans to `trace_collector`."""
    running = await start_stack(
        infrastructure,
        tmp_path_factory.mktemp("colony-stack"),
        COLONY_REACTORS="true",
        OTEL_EXPORTER_OTLP_ENDPOINT=trace_collector.url,
        OTEL_BSP_SCHEDULE_DELAY="200",
        OTEL_BSP_MAX_QUEUE_SIZE="65536",  # every test's missions share this stack
    )
    try:
        yield running
    finally:  # in a thread: the collector answers the services' last exports meanwhile
        await asyncio.to_thread(running.supervisor.stop_all)


OPERATOR = "operator:local-operator"


async def until(probe: Callable[[], T | None], timeout_s: float = 30) -> T:
    """Poll `probe()` until it returns something truthy, and return that (typed as the
    probe's result without None); fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


class Colony:
    """Stands in for the colony service: sends the commands it would send, straight to
    the stack's commands topic (the colony issue replaces this with the real reactors)."""

    def __init__(self, stack: RunningStack) -> None:
        self.stack = stack

    async def send(self, mission_id: str, *bodies: CommandBody, actor: str = "colony:test") -> None:
        async with command_sender(self.stack.slice) as sender:
            await sender.send(*(command(mission_id, body, actor=actor) for body in bodies))

    async def to_review(self, mission_id: str, packet_hash: str = "a" * 64) -> None:
        await self.send(mission_id, *review(packet_hash))

    async def propose(self, mission_id: str, writeback_id: str) -> None:
        await self.send(mission_id, proposal(writeback_id))

    async def awaiting_approval(self, mission_ids: list[str]) -> dict[str, str]:
        """Each mission reviewed and proposing one writeback, all sent at once (what many
        awaiting missions take, without a sender each); their writeback ids by mission."""
        writebacks = {mission_id: str(uuid.uuid4()) for mission_id in mission_ids}
        async with command_sender(self.stack.slice) as sender:
            await sender.send(
                *(
                    command(mission_id, body, actor="colony:test")
                    for mission_id, writeback_id in writebacks.items()
                    for body in (*review("a" * 64), proposal(writeback_id))
                )
            )
        return writebacks


def review(packet_hash: str) -> list[CommandBody]:
    """What takes a mission from requested to in review with a passing verdict."""
    plan = [PlannedTask(task_id="research", kind="research", description="gather")]
    return [
        StartPlanning(planner="planner"),
        RecordPlan(tasks=plan, rationale="crm plan"),
        StartTask(task_id="research", worker="w1"),
        CompleteTask(task_id="research", summary="found", tokens_used=42, duration_ms=7),
        BeginReview(reviewer="reviewer"),
        RecordReview(packet_hash=packet_hash, verdict="pass", output="Northwind is a fit"),
    ]


def proposal(writeback_id: str) -> ProposeWriteback:
    return ProposeWriteback(
        writeback_id=writeback_id,
        target="crm",
        record_ref="account:northwind",
        changes={"qualification_score": "82"},
        rationale="strong fit",
    )
