"""Projections: exactly once under a killed projector, and rebuilds equal to live views."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition

from infra.topics import EVENTS, TopicNames, partition_for
from ledger.codec import AvroCodec
from ledger.commands import (
    Command,
    CommandBody,
    CompleteTask,
    PlannedTask,
    RecordBudgetUse,
    RecordPlan,
    StartPlanning,
    StartTask,
)
from ledger.dead_letters import DeadLetters
from ledger.decider import Decider
from ledger.events import CommandRejected, RecordedEvent
from ledger.settings import DeciderSettings
from ledger.state import MissionState
from ledger.step import step
from ledger.wire import LedgerWire
from projections.batch import BatchApplier
from projections.feeds import ledger_feed
from projections.migrate import apply_migrations
from projections.projector import Projector
from projections.rebuild import choose, rebuild
from projections.settings import ProjectorSettings
from tests.conftest import Infrastructure, Isolated, create_database
from tests.factories import AUTHORITY, command, crm_script, request_body
from tests.integration.conftest import (
    ServiceProcess,
    command_sender,
    eventually,
    ledger_services,
    log_events,
    prepared,
)

pytestmark = pytest.mark.integration
VIEWS = {
    "missions": "mission_id",
    "tasks": "mission_id, task_id",
    "approvals": "mission_id, writeback_id",
    "artifacts": "mission_id, artifact_id",
    "reviewer_packets": "mission_id, sequence",
    "policy_decisions": "mission_id, sequence",
    "ledger_events": "mission_id, sequence",
}


async def snapshot(database_url: str) -> dict[str, list[dict[str, Any]]]:
    """Every view's rows in key order (the archive without its arrival time)."""
    connection = await asyncpg.connect(database_url)
    try:
        return {
            table: [
                {k: v for k, v in dict(row).items() if k != "archived_at"}
                for row in await connection.fetch(f"SELECT * FROM {table} ORDER BY {key}")
            ]
            for table, key in VIEWS.items()
        }
    finally:
        await connection.close()


async def archived_count(database_url: str) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        return int(await connection.fetchval("SELECT count(*) FROM ledger_events"))
    finally:
        await connection.close()


async def decide_missions(slice_: Isolated, missions: int) -> int:
    """Run `missions` CRM missions through a decider (no projector); events in the log."""
    decider = Decider(
        DeciderSettings(
            KAFKA_TOPIC_PREFIX=slice_.topic_prefix, DECIDER_GROUP_ID=f"d-{uuid.uuid4().hex[:6]}"
        ),
        slice_.bootstrap_servers,
    )
    stop = asyncio.Event()
    running = asyncio.create_task(decider.run(stop))
    async with command_sender(slice_) as sender:
        for _ in range(missions):
            await sender.send(*crm_script(str(uuid.uuid4())))
    expected = missions * 14

    async def all_decided() -> int | None:
        count = len(await log_events(slice_))
        return count if count >= expected else None

    count = int(await eventually(all_decided, timeout_s=60))
    stop.set()
    await running
    return count


async def test_killing_the_projector_mid_batch_leaves_views_as_an_uninterrupted_run(
    infrastructure: Infrastructure, isolated: Isolated, tmp_path: Path
) -> None:
    await prepared(isolated)
    total = await decide_missions(isolated, missions=60)
    projector = ServiceProcess(
        "projections.projector",
        isolated,
        tmp_path / "projector.log",
        PROJECTOR_GROUP_ID=f"p-{uuid.uuid4().hex[:6]}",
        PROJECTOR_MAX_BATCH="7",
    )
    projector.start()
    try:
        rng = random.Random(3)
        for _ in range(4):
            await asyncio.sleep(rng.uniform(1.5, 3.0))
            assert await archived_count(isolated.database_url) < total, "kill came too late"
            projector.kill()
            projector.start()
        await eventually(
            lambda: _at_least(archived_count(isolated.database_url), total), timeout_s=120
        )
    finally:
        projector.stop()

    reference = Isolated(
        isolated.bootstrap_servers,
        await create_database(infrastructure.admin_database_url),
        isolated.topic_prefix,
    )
    connection = await asyncpg.connect(reference.database_url)
    await apply_migrations(connection)
    await connection.close()
    pool = await asyncpg.create_pool(reference.database_url, min_size=1, max_size=4)
    uninterrupted = Projector(
        ProjectorSettings(
            KAFKA_TOPIC_PREFIX=reference.topic_prefix, PROJECTOR_GROUP_ID=f"r-{uuid.uuid4().hex}"
        ),
        reference.bootstrap_servers,
        pool,
        ledger_feed(),
    )
    stop = asyncio.Event()
    running = asyncio.create_task(uninterrupted.run(stop))
    await eventually(lambda: _at_least(archived_count(reference.database_url), total), 60)
    stop.set()
    await running
    await pool.close()
    assert await snapshot(isolated.database_url) == await snapshot(reference.database_url)


async def _at_least(count_coro, total: int):  # type: ignore[no-untyped-def]
    count = await count_coro
    return count if count >= total else None


async def test_a_rebuild_beside_the_live_projector_equals_the_live_views(
    isolated: Isolated,
) -> None:
    await prepared(isolated)
    async with ledger_services(isolated), command_sender(isolated) as sender:
        for _ in range(15):
            await sender.send(*crm_script(str(uuid.uuid4())))
        await eventually(lambda: _at_least(archived_count(isolated.database_url), 15 * 14))
        await asyncio.sleep(0.5)
        live = await snapshot(isolated.database_url)
        assert len(live["missions"]) == 15 and len(live["policy_decisions"]) == 15
        pool = await asyncpg.create_pool(isolated.database_url, min_size=1, max_size=2)
        try:
            options = {"bootstrap_servers": isolated.bootstrap_servers}
            names = TopicNames(isolated.topic_prefix)
            replayed = await rebuild(options, names, pool, choose(None))
            assert replayed == 15 * 14
            await rebuild(options, names, pool, choose("approvals"))
        finally:
            await pool.close()
        await asyncio.sleep(2)  # the live projector follows the reset and must not double up
        rebuilt = await snapshot(isolated.database_url)
    assert rebuilt == live


def budget_script(mission_id: str) -> list[Command]:
    """A mission whose budget records (the totals so far) and task results (what each task
    used, to add) interleave."""
    plan = [PlannedTask(task_id=task, kind="research", description="accounts") for task in "ab"]
    bodies: list[CommandBody] = [
        request_body(),
        StartPlanning(planner="planner"),
        RecordPlan(tasks=plan, rationale="two"),
        StartTask(task_id="a", worker="w"),
        RecordBudgetUse(tokens=5, time_ms=7),
        CompleteTask(task_id="a", summary="s", tokens_used=50, duration_ms=20),
        RecordBudgetUse(tokens=3, time_ms=4),
        StartTask(task_id="b", worker="w"),
        CompleteTask(task_id="b", summary="s", tokens_used=11, duration_ms=13),
    ]
    return [command(mission_id, body) for body in bodies]


def event_records(events: list[RecordedEvent], partition: int, first: int) -> list[ConsumerRecord]:
    wire = LedgerWire()
    records = []
    for offset, event in enumerate(events, first):
        out = wire.encode_event(event)
        records.append(
            ConsumerRecord(
                "events", partition, offset, 0, 0, out.key, out.value, None, 0, 0, out.headers
            )
        )
    return records


async def test_tokens_and_time_in_the_view_are_the_ledgers_however_events_are_batched(
    isolated: Isolated,
) -> None:
    """A batch's budget records and task results are folded into one statement per mission
    (projections/missions.py `use_after`): the view still shows the ledger's figures,
    whether the events come two at a time or all in one batch."""
    await prepared(isolated)
    first = str(uuid.uuid4())
    partition = partition_for(first.encode(), EVENTS.partitions)
    second = next(
        m
        for m in (str(uuid.uuid4()) for _ in range(1_000))
        if partition_for(m.encode(), EVENTS.partitions) == partition
    )
    expected: dict[str, tuple[int, int]] = {}
    records: list[list[ConsumerRecord]] = []
    for mission_id in (first, second):
        state, events = MissionState(mission_id=mission_id), []
        for item in budget_script(mission_id):
            state, new = step(state, item, datetime.now(UTC), AUTHORITY)
            events += new
        assert not any(isinstance(e.body, CommandRejected) for e in events)
        expected[mission_id] = (state.tokens_used, state.time_used_ms)
        records.append(event_records(events, partition, sum(len(r) for r in records)))
    tp = TopicPartition(TopicNames(isolated.topic_prefix).events, partition)
    pool = await asyncpg.create_pool(isolated.database_url, min_size=1, max_size=2)
    producer = AIOKafkaProducer(bootstrap_servers=isolated.bootstrap_servers)
    await producer.start()
    try:
        dead = DeadLetters(
            producer, TopicNames(isolated.topic_prefix).dead_letters, AvroCodec(), "t"
        )
        applier = BatchApplier(pool, ledger_feed(), dead, strict=True)
        for start in range(0, len(records[0]), 2):
            await applier.apply(tp, records[0][start : start + 2])
        await applier.apply(tp, records[1])
        shown = {
            row["mission_id"]: (row["tokens_used"], row["time_used_ms"])
            for row in await pool.fetch(
                "SELECT mission_id, tokens_used, time_used_ms FROM missions"
            )
        }
    finally:
        await producer.stop()
        await pool.close()
    assert expected[first] == (5 + 50 + 3 + 11, 7 + 20 + 4 + 13)
    assert shown == expected
