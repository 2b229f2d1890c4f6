"""The colony storing artifacts through the real root (colony_consumers/root_client.py):
missions storing at once share requests (colony_consumers/store_queue.py), each recorded
on its own trace; a mission the root's view lags behind is asked again briefly, then an
outage, and alone."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import aiohttp
import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from colony_consumers.root_client import LAG_WAIT_S, Artifact, LaggingError, RootClient
from colony_consumers.settings import LOCAL_ROOT_KEY
from infra.topics import COMMANDS, TopicNames
from ledger.commands import RecordArtifacts
from ledger.log_reader import fetches_to_end
from ledger.wire import LedgerWire
from tests.conftest import Isolated
from tests.integration.conftest import prepared, root_server
from tests.integration.test_mission_filters import ROW

pytestmark = pytest.mark.integration
OPERATOR = {"Authorization": "Bearer local-operator-key"}


@asynccontextmanager
async def colony_to_root(slice_: Isolated) -> AsyncIterator[tuple[str, RootClient]]:
    """The real root served on 127.0.0.1, and the colony's client of it (a colony key)."""
    headers = {"Authorization": f"Bearer {LOCAL_ROOT_KEY}"}
    async with root_server(slice_) as root, aiohttp.ClientSession(headers=headers) as session:
        yield root, RootClient(session, root)


async def test_an_artifact_of_a_mission_the_roots_view_lacks_is_stored_once_it_appears(
    isolated: Isolated,
) -> None:
    """A task's first artifact often reaches the root before the projector has the
    mission: the colony asks again until the view has it, and the store succeeds."""
    await prepared(isolated)
    mission_id = str(uuid.uuid4())
    async with colony_to_root(isolated) as (_, client):
        storing = asyncio.create_task(client.store(Artifact("found it", mission_id, kind="source")))
        await asyncio.sleep(LAG_WAIT_S / 4)
        waited = not storing.done()
        connection = await asyncpg.connect(isolated.database_url)
        try:
            await connection.execute(ROW, mission_id, "running", datetime.now(UTC))
            content_hash = await asyncio.wait_for(storing, LAG_WAIT_S * 2)
            stored = await connection.fetchval(
                "SELECT content FROM artifact_blobs WHERE content_hash = $1", content_hash
            )
        finally:
            await connection.close()
    assert waited, "the store waited for the mission"
    assert content_hash == hashlib.sha256(b"found it").hexdigest()
    assert stored == b"found it"


async def test_a_mission_the_roots_view_never_shows_is_an_outage_after_the_lag_wait(
    isolated: Isolated,
) -> None:
    await prepared(isolated)
    async with colony_to_root(isolated) as (_, client):
        started = time.monotonic()
        with pytest.raises(LaggingError, match="lags the log"):
            await client.store(Artifact("x", str(uuid.uuid4())))
    assert LAG_WAIT_S <= time.monotonic() - started < LAG_WAIT_S * 3


async def request_counts(root: str) -> Counter[str]:
    """The root's own count of artifact requests, by route and status (its /metrics; the
    registry is the process's, so tests compare counts before and after)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{root}/metrics", headers=OPERATOR) as response,
    ):
        text = await response.text()
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        if line.startswith("velocity_http_requests_total") and "/internal/artifacts" in line:
            labels, value = line.rsplit(" ", 1)
            route = labels.split('route="')[1].split('"')[0]
            status = labels.split('status="')[1].split('"')[0]
            counts[f"{route} {status}"] = int(float(value))
    return counts


async def test_missions_storing_at_once_share_one_request(isolated: Isolated) -> None:
    await prepared(isolated)
    missions = await working_missions(isolated, 6)
    async with colony_to_root(isolated) as (root, client):
        before = await request_counts(root)
        hashes = await asyncio.gather(
            *(client.store(Artifact(f"evidence of {m}", m, kind="source")) for m in missions)
        )
        counts = await request_counts(root) - before
    recorded = await recorded_artifacts(isolated)
    assert hashes == [hashlib.sha256(f"evidence of {m}".encode()).hexdigest() for m in missions]
    assert counts == {"/internal/artifacts/batch 201": 1}
    assert recorded == {m: trace_of(m) for m in missions}, "each on its mission's trace"


async def recorded_artifacts(slice_: Isolated) -> dict[str, str]:
    """{mission id: trace id} of the RecordArtifacts commands on the commands topic, read
    with a plain consumer."""
    topic = TopicNames(slice_.topic_prefix).commands
    consumer = AIOKafkaConsumer(bootstrap_servers=slice_.bootstrap_servers)
    await consumer.start()
    wire, found = LedgerWire(), {}
    try:
        partitions = [TopicPartition(topic, p) for p in range(COMMANDS.partitions)]
        async for batches in fetches_to_end(consumer, partitions):
            for record in (r for records in batches.values() for r in records):
                command = wire.decode_command(record.value or b"")
                if isinstance(command.body, RecordArtifacts):
                    found[command.meta.mission_id] = command.meta.trace_id
    finally:
        await consumer.stop()
    return found


async def test_one_missions_refusal_in_a_shared_request_is_its_own(isolated: Isolated) -> None:
    """A mission the root's view does not show shares a request with others: they are
    stored at once, it alone waits out the lag and gives up."""
    await prepared(isolated)
    missions = await working_missions(isolated, 3)
    async with colony_to_root(isolated) as (root, client):
        before = await request_counts(root)
        started = time.monotonic()
        unknown = asyncio.create_task(client.store(Artifact("nowhere", str(uuid.uuid4()))))
        hashes = await asyncio.gather(*(client.store(Artifact(m, m)) for m in missions))
        stored_after = time.monotonic() - started
        with pytest.raises(LaggingError):
            await unknown
        counts = await request_counts(root) - before
    assert hashes == [hashlib.sha256(m.encode()).hexdigest() for m in missions]
    assert stored_after < LAG_WAIT_S / 2, "the others did not wait for the unknown mission"
    assert counts["/internal/artifacts/batch 404"] == 1, "they were sent together first"
    assert counts["/internal/artifacts 201"] == 3


def trace_of(mission_id: str) -> str:
    """The trace id these tests give a mission: its own id's 32 hex digits."""
    return uuid.UUID(mission_id).hex


async def working_missions(slice_: Isolated, count: int) -> list[str]:
    """`count` missions the root's view shows at work (as the projector writes them), each
    on a trace of its own (`trace_of`)."""
    missions = [str(uuid.uuid4()) for _ in range(count)]
    connection = await asyncpg.connect(slice_.database_url)
    try:
        await connection.executemany(ROW, [(m, "running", datetime.now(UTC)) for m in missions])
        await connection.executemany(
            "UPDATE missions SET trace_id = $2 WHERE mission_id = $1",
            [(m, trace_of(m)) for m in missions],
        )
    finally:
        await connection.close()
    return missions
