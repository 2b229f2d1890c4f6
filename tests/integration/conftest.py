"""In-process decider and projector on a test's own slice of the real broker and database."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import SecretStr
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.runtime import GatewayRuntime
from gateway.settings import RootSettings
from infra.config import CommonSettings
from infra.preparation import prepare_infrastructure
from infra.processes import child_environment, free_port, spawn, stop
from infra.topics import EVENTS, PARTITIONS, TopicNames
from ledger.codec import AvroCodec
from ledger.commands import Command
from ledger.decider import Decider
from ledger.events import RecordedEvent
from ledger.log_reader import read_to_end
from ledger.settings import DeciderSettings
from ledger.wire import LedgerWire
from projections.projector import Projector, projectors
from projections.settings import ProjectorSettings
from tests.conftest import Isolated
from tests.fake_services import FakeServer

T = TypeVar("T")


async def prepared(slice_: Isolated, *, restore: bool = False) -> None:
    settings = CommonSettings(KAFKA_TOPIC_PREFIX=slice_.topic_prefix)
    await prepare_infrastructure(
        settings, slice_.bootstrap_servers, slice_.database_url, restore=restore
    )


@pytest.fixture
async def pool(isolated: Isolated) -> AsyncIterator[asyncpg.Pool]:
    """The slice prepared (topics, migrations), and a pool on its database."""
    await prepared(isolated)
    connections = await asyncpg.create_pool(isolated.database_url, min_size=1, max_size=4)
    try:
        yield connections
    finally:
        await connections.close()


class CommandSender:
    """Appends commands to a slice's commands topic."""

    def __init__(self, slice_: Isolated) -> None:
        self.topics = TopicNames(slice_.topic_prefix)
        self.producer = AIOKafkaProducer(bootstrap_servers=slice_.bootstrap_servers, acks="all")
        self.wire = LedgerWire()

    async def send(self, *commands: Command) -> None:
        for item in commands:
            record = self.wire.encode_command(item)
            await self.producer.send_and_wait(
                self.topics.commands, record.value, record.key, headers=record.headers
            )


@asynccontextmanager
async def command_sender(slice_: Isolated) -> AsyncIterator[CommandSender]:
    sender = CommandSender(slice_)
    await sender.producer.start()
    try:
        yield sender
    finally:
        await sender.producer.stop()


@asynccontextmanager
async def ledger_services(
    slice_: Isolated, with_decider: bool = True, **decider_settings: Any
) -> AsyncIterator[tuple[Decider, Projector[Any]]]:
    """A decider (unless not `with_decider`) and the projectors (events, metrics, dead
    letters) running as tasks until the block ends; yields the decider and the events
    projector. `decider_settings` override the decider's (e.g. DECIDER_FAULT)."""
    group = uuid.uuid4().hex[:8]
    common: dict[str, Any] = {
        "KAFKA_TOPIC_PREFIX": slice_.topic_prefix,
        "KAFKA_SESSION_TIMEOUT_MS": 6000,
    }
    decider = Decider(
        DeciderSettings(**({"DECIDER_GROUP_ID": f"d-{group}"} | common | decider_settings)),
        slice_.bootstrap_servers,
    )
    pool = await asyncpg.create_pool(slice_.database_url, min_size=1, max_size=6)
    stop = asyncio.Event()
    running = projectors(
        ProjectorSettings(PROJECTOR_GROUP_ID=f"p-{group}", **common),
        slice_.bootstrap_servers,
        pool,
        stop,
    )
    tasks = [asyncio.create_task(decider.run(stop))] if with_decider else []
    tasks += [asyncio.create_task(projector.run(stop)) for projector in running]
    try:
        yield decider, running[0]
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await pool.close()


async def eventually(
    probe: Callable[[], Awaitable[T | None]], timeout_s: float = 20, pause_s: float = 0.1
) -> T:
    """Await `probe()` until it returns something truthy, and return that (typed as the
    probe's result without None); fail after `timeout_s`."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = await probe()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s (last: {result!r})")
        await asyncio.sleep(pause_s)


async def logged(path: Path, text: str, times: int = 1) -> bool:
    """Whether the service log at `path` holds `text` at least `times` times."""
    content = await asyncio.to_thread(lambda: path.read_text() if path.exists() else "")
    return content.count(text) >= times


async def serving(decider: Decider, projector: Projector[Any]) -> None:
    """Wait until the decider and the events projector own every partition: a test's
    first request then waits for deciding, not for the groups to form (on a loaded
    machine that can outlast the root's SYNC_WAIT_MS, and the answer is a 202)."""

    async def owned() -> bool:
        return len(decider.loop.ready) == len(projector.assigned) == PARTITIONS

    await eventually(owned, timeout_s=60)


async def archived(database_url: str, mission_id: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(database_url)
    try:
        return list(
            await connection.fetch(
                "SELECT * FROM ledger_events WHERE mission_id = $1 ORDER BY sequence", mission_id
            )
        )
    finally:
        await connection.close()


async def log_events(slice_: Isolated) -> list[RecordedEvent]:
    """Every event in the slice's events topic, in partition order."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=slice_.bootstrap_servers, enable_auto_commit=False, fetch_max_wait_ms=50
    )
    await consumer.start()
    wire = LedgerWire()
    events: list[RecordedEvent] = []
    try:
        topic = TopicNames(slice_.topic_prefix).events
        partitions = [TopicPartition(topic, p) for p in range(EVENTS.partitions)]
        async for _, records in read_to_end(consumer, partitions):
            events.extend(wire.decode_event(r.value) for r in records)
    finally:
        await consumer.stop()
    return events


async def dead_letters(slice_: Isolated) -> list[dict[str, Any]]:
    """Every dead letter of the slice, decoded."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=slice_.bootstrap_servers, enable_auto_commit=False, fetch_max_wait_ms=50
    )
    await consumer.start()
    codec = AvroCodec()
    letters: list[dict[str, Any]] = []
    try:
        topic = TopicNames(slice_.topic_prefix).dead_letters
        async for _, records in read_to_end(consumer, [TopicPartition(topic, 0)]):
            letters.extend(codec.decode(r.value)[1] for r in records)
    finally:
        await consumer.stop()
    return letters


class ServiceProcess:
    """A service (`python -m MODULE`) as a real process on a slice, for crash tests."""

    def __init__(self, module: str, slice_: Isolated, log_path: Path, **env: str) -> None:
        self.module = module
        self.env = child_environment(
            **slice_.environment(), KAFKA_SESSION_TIMEOUT_MS="3000", LOG_FORMAT="json", **env
        )
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = spawn(
            [sys.executable, "-m", self.module], env=self.env, log_path=self.log_path
        )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)


def decider_process(slice_: Isolated, group: str, log_path: Path) -> ServiceProcess:
    return ServiceProcess("ledger.decider", slice_, log_path, DECIDER_GROUP_ID=group)


SERVICE_AUTH = {"Authorization": "Bearer local-service-key"}


class RootServer(FakeServer):
    """The real root app served by uvicorn (its lifespan runs the MCP session manager)."""

    def __init__(self, slice_: Isolated, **settings: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.settings = RootSettings(
            KAFKA_BOOTSTRAP_SERVERS=slice_.bootstrap_servers,
            DATABASE_URL=SecretStr(slice_.database_url),
            KAFKA_TOPIC_PREFIX=slice_.topic_prefix,
            **settings,
        )

    def app(self) -> Starlette:
        return create_app(self.settings)


@asynccontextmanager
async def root_server(slice_: Isolated, **settings: Any) -> AsyncIterator[str]:
    server = RootServer(slice_, **settings)
    await server.start()
    try:
        yield server.url
    finally:
        await server.stop()


@asynccontextmanager
async def root_api(slice_: Isolated, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The root app in-process on `slice_`, reached over ASGI."""
    config = RootSettings(
        KAFKA_BOOTSTRAP_SERVERS=slice_.bootstrap_servers,
        DATABASE_URL=SecretStr(slice_.database_url),
        KAFKA_TOPIC_PREFIX=slice_.topic_prefix,
        **settings,
    )
    app = create_app(config)
    app.state.runtime = GatewayRuntime.build(config)
    app.state.runtime.start()
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://root", headers=SERVICE_AUTH
        ) as c:
            yield c
    finally:
        await app.state.runtime.close()
