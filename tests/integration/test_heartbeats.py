"""Heartbeats (infra/heartbeat.py): every running process as the root's readiness and the
console's Health page read it, in a table that holds a day of starts, not every start."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta

import asyncpg
import pytest

from infra.heartbeat import INTERVAL_S, beat_forever, instance_name, live_processes
from tests.integration.conftest import eventually

pytestmark = pytest.mark.integration
BEAT = """
INSERT INTO service_heartbeats (service, instance, started_at, last_seen_at, details)
VALUES ('decider', $1, now() - $2::interval, now() - $2::interval, '{"partitions": [0]}')
"""


async def test_a_start_forgets_processes_long_gone_and_lists_the_live_ones(
    pool: asyncpg.Pool,
) -> None:
    await pool.execute(BEAT, "gone-host:1", timedelta(days=2))  # a container replaced long ago
    await pool.execute(BEAT, "other-host:2", timedelta(minutes=1))  # stale, not long gone
    details = {"partitions": [0, 1], "rebuilding": {"2": "in progress"}}
    beating = asyncio.create_task(beat_forever(pool, "projector", lambda: details))
    try:
        live = await eventually(lambda: live_processes(pool))
    finally:
        beating.cancel()
    kept = {row["instance"] for row in await pool.fetch("SELECT instance FROM service_heartbeats")}
    assert kept == {"other-host:2", instance_name()}
    assert [(p.service, p.instance, p.partitions, p.rebuilding) for p in live] == [
        ("projector", instance_name(), [0, 1], [2])
    ]
    assert live[0].last_seen_at >= live[0].started_at


async def test_a_change_of_partitions_is_written_at_once_not_at_the_next_beat(
    pool: asyncpg.Pool,
) -> None:
    """A service that takes partitions shows them to `/readyz` and the Health page
    before its next beat is due: the row changes less than INTERVAL_S after the last
    write, where a beat would come only INTERVAL_S later."""
    details: dict[str, list[int]] = {"partitions": []}
    beating = asyncio.create_task(beat_forever(pool, "colony", lambda: details))
    try:
        first = await eventually(lambda: written(pool, []))
        details = {"partitions": [0, 1, 2]}
        changed = await eventually(lambda: written(pool, [0, 1, 2]))
    finally:
        beating.cancel()
    assert (changed - first).total_seconds() < INTERVAL_S


async def written(pool: asyncpg.Pool, partitions: list[int]) -> datetime | None:
    """When this process's colony heartbeat was written, if it lists `partitions`."""
    row = await pool.fetchrow(
        "SELECT last_seen_at, details FROM service_heartbeats"
        " WHERE service = 'colony' AND instance = $1",
        instance_name(),
    )
    if row is None or json.loads(row["details"])["partitions"] != partitions:
        return None
    return row["last_seen_at"]  # type: ignore[no-any-return]
