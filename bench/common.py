"""Shared set-up for benchmarks: embedded infrastructure and a fresh topic slice."""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from infra.broker import start_broker
from infra.config import CommonSettings
from infra.postgres import start_postgres
from infra.structured_logs import configure_logging
from infra.topics import TopicNames, provision_topics
from ledger.commands import Command, CommandBody, CommandMeta, RecordBudgetUse, RequestMission


@dataclass(frozen=True)
class BenchInfra:
    bootstrap_servers: str
    database_url: str


@contextmanager
def embedded_infrastructure() -> Iterator[BenchInfra]:
    """A broker and PostgreSQL for one benchmark run, stopped afterwards.

    Logging is set to WARNING: per-record debug lines would measure the terminal.
    """
    configure_logging(CommonSettings(LOG_LEVEL="WARNING"), "bench")
    data_dir = Path(tempfile.mkdtemp(prefix="velocity-bench-"))
    broker = start_broker(data_dir / "broker.log")
    database = start_postgres(data_dir, data_dir / "pg.log", durable=False)
    try:
        yield BenchInfra(broker.bootstrap_servers, database.url)
    finally:
        broker.stop()
        database.stop()


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
