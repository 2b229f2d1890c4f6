"""Projections: exactly once under a killed projector, and rebuilds equal to live views."""

from __future__ import annotations

import asyncio
import random
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from infra.topics import TopicNames
from ledger.decider import Decider
from ledger.settings import DeciderSettings
from projections.migrate import apply_migrations
from projections.projector import Projector, ledger_feed
from projections.rebuild import choose, rebuild
from projections.settings import ProjectorSettings
from tests.conftest import Infrastructure, Isolated, create_database
from tests.factories import crm_script
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
