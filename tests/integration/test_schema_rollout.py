"""A rolling deploy: a newer writer puts an event of a schema this projector does not know
yet on `mission.events`. The projector holds that partition there (said on /readyz and
/metrics), never sets the event aside or skips it, and an upgraded projector reads on."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from fastavro import parse_schema, schemaless_writer

from infra.topics import EVENTS, TopicNames, partition_for
from ledger.chain import link_hash, record
from ledger.codec import MAGIC, AvroCodec, history_text, schema_fingerprint
from ledger.events import GENESIS_HASH, MissionRequested, RecordedEvent
from ledger.state import MissionState
from ledger.wire import LedgerWire
from projections.feeds import ledger_feed
from projections.projector import Projector
from projections.settings import ProjectorSettings
from schemas_avro import SCHEMA_DIR
from tests.conftest import Isolated
from tests.factories import command, request_body
from tests.integration.conftest import eventually, prepared

pytestmark = pytest.mark.integration
NAME = "velocity.events.MissionRequested"


def future_schema() -> dict[str, Any]:
    """MissionRequested as a newer release writes it: one more field, with a default."""
    schema: dict[str, Any] = json.loads(history_text(SCHEMA_DIR / f"{NAME}.avsc"))
    schema["fields"].append({"name": "priority", "type": "string", "default": "normal"})
    return schema


def future_record(mission_id: str) -> bytes:
    body = MissionRequested(**request_body().model_dump())
    state = MissionState(mission_id=mission_id)
    event = record(state, command(mission_id, request_body()), [body], datetime.now(UTC))[0]
    meta = event.meta.model_copy(update={"hash": link_hash(GENESIS_HASH, event.meta, body)})
    schema = parse_schema(future_schema())
    out = io.BytesIO()
    out.write(MAGIC + schema_fingerprint(schema))
    schemaless_writer(
        out, schema, {"meta": meta.model_dump(), **body.model_dump(), "priority": "high"}
    )
    return out.getvalue()


def next_in_partition(partition: int) -> str:
    return next(
        m
        for m in (str(uuid.uuid4()) for _ in range(200))
        if partition_for(m.encode(), EVENTS.partitions) == partition
    )


def plain_event(mission_id: str) -> RecordedEvent:
    body = MissionRequested(**request_body().model_dump())
    return record(
        MissionState(mission_id=mission_id),
        command(mission_id, request_body()),
        [body],
        datetime.now(UTC),
    )[0]


async def run_projector(
    slice_: Isolated, codec: AvroCodec | None
) -> tuple[Projector[Any], asyncio.Event, asyncio.Task[None], asyncpg.Pool]:
    pool = await asyncpg.create_pool(slice_.database_url, min_size=1, max_size=4)
    settings = ProjectorSettings(
        KAFKA_TOPIC_PREFIX=slice_.topic_prefix, PROJECTOR_GROUP_ID=f"p-{uuid.uuid4().hex[:6]}"
    )
    stop = asyncio.Event()
    projector = Projector(settings, slice_.bootstrap_servers, pool, ledger_feed(codec=codec), stop)
    return projector, stop, asyncio.create_task(projector.run(stop)), pool


async def projected(pool: asyncpg.Pool, mission_id: str) -> bool:
    return bool(await pool.fetchval("SELECT 1 FROM missions WHERE mission_id = $1", mission_id))


async def test_an_unknown_writer_schema_holds_the_partition_until_an_upgraded_projector_reads_on(
    isolated: Isolated, tmp_path: Path
) -> None:
    await prepared(isolated)
    newer = str(uuid.uuid4())
    partition = partition_for(newer.encode(), EVENTS.partitions)
    behind = next_in_partition(partition)
    producer = AIOKafkaProducer(bootstrap_servers=isolated.bootstrap_servers, acks="all")
    await producer.start()
    try:
        topic = TopicNames(isolated.topic_prefix).events
        await producer.send_and_wait(topic, future_record(newer), newer.encode(), partition)
        queued = LedgerWire().encode_event(plain_event(behind))
        await producer.send_and_wait(topic, queued.value, queued.key, partition)
    finally:
        await producer.stop()

    projector, stop, running, pool = await run_projector(isolated, None)
    try:
        await eventually(lambda: _held(projector, partition))
        await asyncio.sleep(1)
        assert not await projected(pool, behind), "nothing passes a held record"
        assert await pool.fetchval("SELECT count(*) FROM ledger_set_aside") == 0
    finally:
        stop.set()
        await running
        await pool.close()

    upgraded = tmp_path / "schemas"
    shutil.copytree(SCHEMA_DIR, upgraded)
    (upgraded / "history" / f"{NAME}.v-next.avsc").write_text(json.dumps(future_schema()))
    projector, stop, running, pool = await run_projector(isolated, AvroCodec(upgraded))
    try:
        await eventually(lambda: _both(pool, newer, behind))
    finally:
        stop.set()
        await running
        await pool.close()


async def _held(projector: Projector[Any], partition: int) -> bool:
    return partition in projector.applier.held


async def _both(pool: asyncpg.Pool, first: str, second: str) -> bool:
    return await projected(pool, first) and await projected(pool, second)
