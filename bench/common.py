"""Shared set-up for benchmarks: embedded infrastructure and a fresh topic slice."""

from __future__ import annotations

import asyncio
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from infra.broker import start_broker
from infra.config import CommonSettings
from infra.postgres import start_postgres
from infra.preparation import prepare_infrastructure
from infra.processes import child_environment, free_port
from infra.stack import Supervisor, wait_until_ready
from infra.structured_logs import configure_logging
from infra.topics import TopicNames, provision_topics
from infra.tracing import configure_tracing
from ledger.commands import Command, CommandBody, CommandMeta, RecordBudgetUse, RequestMission
from ledger.wire import LedgerWire
from projections.migrate import apply_migrations


@dataclass(frozen=True)
class BenchInfra:
    bootstrap_servers: str
    database_url: str
    broker_pid: int
    database_pid: int


@contextmanager
def embedded_infrastructure() -> Iterator[BenchInfra]:
    """A broker and PostgreSQL for one benchmark run, stopped and deleted afterwards (a
    soak leaves up to 2.7 GB of PostgreSQL data: kept, they filled the disk).

    Logging is set to WARNING: per-record debug lines would measure the terminal.
    """
    configure_logging(CommonSettings(LOG_LEVEL="WARNING"), "bench")
    configure_tracing(CommonSettings(), "bench")  # as the services run without an endpoint
    data_dir = Path(tempfile.mkdtemp(prefix="velocity-bench-"))
    broker = start_broker(data_dir / "broker.log")
    database = start_postgres(data_dir, data_dir / "pg.log", durable=False)
    try:
        yield BenchInfra(
            broker.bootstrap_servers, database.url, broker.process.pid, database.process.pid
        )
    finally:
        broker.stop()
        database.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


async def fresh_topics(bootstrap_servers: str) -> TopicNames:
    names = TopicNames(f"b{uuid.uuid4().hex[:8]}.")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        await provision_topics(admin, names)
    finally:
        await admin.close()
    return names


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started


async def latency_cuts(fetch: Callable[[], Awaitable[object]], rounds: int) -> list[float]:
    """The 99 percentile cuts (ms) of `rounds` timed calls of `fetch`, after a warm-up call:
    cuts[49] is the p50, cuts[94] the p95, cuts[98] the p99."""
    await fetch()
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        await fetch()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.quantiles(timings, n=100)


async def wait_until(predicate, timeout_s: float = 600) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark did not finish in time")
        await asyncio.sleep(0.05)


def mission_commands(mission_id: str, count: int, now: datetime) -> list[Command]:
    """A mission's benchmark commands: its request, then budget-use records (all accepted)."""
    out = []
    for i in range(count):
        body: CommandBody = (
            RequestMission(
                mission_type="oracle",
                mode="assisted",
                objective="bench",
                environment="local",
                time_budget_ms=10**12,
                token_budget=10**12,
            )
            if i == 0
            else RecordBudgetUse(tokens=1, time_ms=1)
        )
        meta = CommandMeta(
            command_id=f"{mission_id}/{i}",
            mission_id=mission_id,
            issued_at=now,
            correlation_id=mission_id,
            trace_id="0" * 32,
            actor="bench",
        )
        out.append(Command(meta=meta, body=body))
    return out


class BenchStack(NamedTuple):
    root: str
    database_url: str
    prefix: str
    supervisor: Supervisor
    """Its services, to stop or restart one (the soak restarts the colony)."""

    def pids(self, infra: BenchInfra) -> dict[str, int]:
        """Every process of the stack by name, with the broker and PostgreSQL."""
        services = {s.name: s.process.pid for s in self.supervisor.services if s.process}
        return services | {"broker": infra.broker_pid, "postgres": infra.database_pid}


async def produce_commands(bootstrap: str, topic: str, missions: Iterable[list[Command]]) -> None:
    """Each mission's commands, in order, as fast as the broker takes them (acknowledged in
    groups of 20,000 to bound what is in flight)."""
    wire = LedgerWire()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    await producer.start()
    try:
        pending = []
        for commands in missions:
            for command in commands:
                encoded = wire.encode_command(command)
                pending.append(
                    await producer.send(topic, encoded.value, encoded.key, headers=encoded.headers)
                )
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


@contextmanager
def running_stack(infra: BenchInfra, **env: str) -> Iterator[BenchStack]:
    """Decider, projector, colony and root on a fresh database and topic prefix, stopped
    afterwards."""
    database_url = asyncio.run(new_database(infra.database_url))
    prefix = f"s{uuid.uuid4().hex[:6]}."
    settings = CommonSettings(KAFKA_TOPIC_PREFIX=prefix)
    asyncio.run(prepare_infrastructure(settings, infra.bootstrap_servers, database_url))
    root_port, colony_port = free_port(), free_port()
    environment = child_environment(
        KAFKA_BOOTSTRAP_SERVERS=infra.bootstrap_servers,
        DATABASE_URL=database_url,
        KAFKA_TOPIC_PREFIX=prefix,
        ROOT_PORT=str(root_port),
        PORT=str(colony_port),
        COLONY_SERVICE_BASE_URL=f"http://127.0.0.1:{colony_port}",
        ROOT_API_BASE_URL=f"http://127.0.0.1:{root_port}",
        LOG_LEVEL="WARNING",
        **env,
    )
    logs = Path(tempfile.mkdtemp(prefix="velocity-bench-logs-"))
    supervisor = Supervisor.for_ports(environment, root_port, [colony_port], logs)
    supervisor.start_all()
    try:
        root = f"http://127.0.0.1:{root_port}"
        if not wait_until_ready(root, 60):
            raise SystemExit(f"stack did not become ready; logs in {logs}")
        yield BenchStack(root, database_url, prefix, supervisor)
    finally:
        supervisor.stop_all()


async def new_database(admin_url: str) -> str:
    """A fresh, migrated database on the server of `admin_url`."""
    name = f"bench_{uuid.uuid4().hex[:8]}"
    connection = await asyncpg.connect(admin_url)
    await connection.execute(f'CREATE DATABASE "{name}"')
    await connection.close()
    url = f"{admin_url.rpartition('/')[0]}/{name}"
    connection = await asyncpg.connect(url)
    await apply_migrations(connection)
    await connection.close()
    return url
