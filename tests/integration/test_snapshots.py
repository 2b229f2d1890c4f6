"""Decider snapshots (issue 12, ledger/snapshots.py): memory bounded by reloading saved
states on a miss, a restart that reads snapshot + tail, and a replaced log that voids the
snapshots — every mission's chain intact throughout, checked in the log itself."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from ledger.commands import RecordBudgetUse
from ledger.decider import Decider
from ledger.events import GENESIS_HASH, CommandRejected
from ledger.history import why_not_next
from ledger.settings import DeciderSettings
from ledger.snapshots import SnapshotStore
from tests.conftest import Isolated
from tests.factories import command, request_body
from tests.integration.conftest import command_sender, eventually, log_events

pytestmark = pytest.mark.integration
MISSIONS = 12


@asynccontextmanager
async def decider_with_snapshots(
    slice_: Isolated, pool: asyncpg.Pool, group: str, **settings: Any
) -> AsyncIterator[Decider]:
    decider = Decider(
        DeciderSettings(
            KAFKA_TOPIC_PREFIX=slice_.topic_prefix,
            DECIDER_GROUP_ID=group,
            KAFKA_SESSION_TIMEOUT_MS=6000,
            **settings,
        ),
        slice_.bootstrap_servers,
        SnapshotStore(pool),
    )
    stop = asyncio.Event()
    running = asyncio.create_task(decider.run(stop))
    try:
        await eventually(lambda: _ready(decider))
        yield decider
    finally:
        stop.set()
        await running


async def members(bootstrap: str, group: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    [(_error, _group, _state, _type, _protocol, listed)] = response.groups
    return [member[0] for member in listed]


async def _ready(decider: Decider) -> bool:
    return len(decider.loop.ready) == 6


async def budget_uses(slice_: Isolated, missions: list[str], round_: str) -> None:
    async with command_sender(slice_) as sender:
        await sender.send(
            *(command(m, RecordBudgetUse(tokens=1, time_ms=1), f"{m}/{round_}") for m in missions)
        )


def chains_intact(events: list[Any], missions: list[str], length: int) -> None:
    """Each mission has `length` events, sequences 1..length, each linked to the last."""
    by_mission: dict[str, list[Any]] = defaultdict(list)
    for event in events:
        by_mission[event.meta.mission_id].append(event)
    for mission_id in missions:
        head = (0, GENESIS_HASH)
        for event in by_mission[mission_id]:
            assert why_not_next(head, event) is None, (mission_id, event.meta.sequence)
            assert not isinstance(event.body, CommandRejected), event.body
            head = (event.meta.sequence, event.meta.hash)
        assert head[0] == length, (mission_id, head)


async def request_missions(slice_: Isolated) -> list[str]:
    """MISSIONS new missions requested; their ids."""
    missions = [f"m-{uuid.uuid4().hex[:8]}" for _ in range(MISSIONS)]
    async with command_sender(slice_) as sender:
        await sender.send(*(command(m, request_body(), f"{m}/request") for m in missions))
    return missions


async def snapshot_rows(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM decider_snapshots"))


async def test_evicted_missions_reload_and_a_restart_reads_only_the_tail(
    isolated: Isolated, pool: asyncpg.Pool
) -> None:
    async with decider_with_snapshots(isolated, pool, "snap", DECIDER_CACHE_MISSIONS=1) as a:
        missions = await request_missions(isolated)
        await eventually(lambda: _decided(a, MISSIONS))
        await eventually(lambda: _saved(pool, MISSIONS))
        await eventually(lambda: _within_limit(a, 1))
        await budget_uses(isolated, missions, "1")  # every mission named again
        await eventually(lambda: _decided(a, 2 * MISSIONS))
        await eventually(lambda: _covers_all(pool, a))
    left = await members(isolated.bootstrap_servers, "snap")  # at once: the session is 6 s
    async with decider_with_snapshots(isolated, pool, "snap", DECIDER_CACHE_MISSIONS=1) as b:
        folded = sum(len(missions_) for missions_ in b.states.values())
        await budget_uses(isolated, missions, "2")
        await eventually(lambda: _decided(b, MISSIONS))
    events = await log_events(isolated)
    assert left == [], "a cleanly stopped decider leaves its group (infra/partition_loop.py)"
    assert folded == 0, "the restart found every state in the snapshots: no tail to fold"
    request_events = len([e for e in events if e.meta.sequence == 1])
    assert request_events == MISSIONS
    per_mission = len(events) // MISSIONS
    chains_intact(events, missions, per_mission)


async def test_a_log_that_is_not_the_one_snapshotted_voids_the_snapshots(
    isolated: Isolated, pool: asyncpg.Pool
) -> None:
    async with decider_with_snapshots(isolated, pool, "void") as a:
        missions = await request_missions(isolated)
        await eventually(lambda: _decided(a, MISSIONS))
        await eventually(lambda: _covers_all(pool, a))
    await pool.execute("UPDATE decider_snapshot_marks SET last_hash = 'not-this-log'")
    await pool.execute("UPDATE decider_snapshots SET state = state || '{\"sequence\": 99}'")
    async with decider_with_snapshots(isolated, pool, "void") as b:
        folded = sum(len(missions_) for missions_ in b.states.values())
        await budget_uses(isolated, missions, "1")
        await eventually(lambda: _decided(b, MISSIONS))
        await eventually(lambda: _covers_all(pool, b))
    events = await log_events(isolated)
    assert folded == MISSIONS, "the whole log was read again"
    chains_intact(events, missions, len(events) // MISSIONS)


async def test_a_snapshot_larger_than_a_flush_is_saved_in_slices(
    isolated: Isolated, pool: asyncpg.Pool
) -> None:
    """After a rebuild that read the whole log every state is unsaved; with
    DECIDER_SNAPSHOT_BATCH 3 the twelve take several flushes, and no partition's mark moves
    before every state of that partition is saved. Stopped half-way, the next decider
    rebuilds from what was saved and decides on with every chain intact."""
    async with decider_with_snapshots(isolated, pool, "slices") as a:
        missions = await request_missions(isolated)
        await eventually(lambda: _decided(a, MISSIONS))
    await pool.execute("DELETE FROM decider_snapshots; DELETE FROM decider_snapshot_marks")
    seen: list[int] = []
    async with decider_with_snapshots(isolated, pool, "slices", DECIDER_SNAPSHOT_BATCH=3) as b:
        assert sum(len(m) for m in b.states.values()) == MISSIONS, "the whole log was read"
        while not seen or seen[-1] < 6:  # two flushes
            seen.append(await snapshot_rows(pool))
            assert await _marked_before_saved(pool, b) == [], seen
            await asyncio.sleep(0.02)
    assert seen[-1] < MISSIONS, f"the first flushes saved {seen[-1]} states, the batch being 3"
    async with decider_with_snapshots(isolated, pool, "slices") as c:
        await budget_uses(isolated, missions, "1")
        await eventually(lambda: _decided(c, MISSIONS))
        await eventually(lambda: _covers_all(pool, c))
    events = await log_events(isolated)
    chains_intact(events, missions, 2)


async def _marked_before_saved(pool: asyncpg.Pool, decider: Decider) -> list[int]:
    """Partitions whose mark is stored while some of their states are not: the mark and
    the count of saved states read in one statement, against the states the decider
    holds (all of them: it read the whole log)."""
    rows = await pool.fetch(
        "SELECT m.partition, (SELECT count(*) FROM decider_snapshots s"
        " WHERE s.partition = m.partition) AS saved FROM decider_snapshot_marks m"
    )
    return [
        row["partition"]
        for row in rows
        if row["saved"] < len(decider.states.get(row["partition"], ()))
    ]


async def _decided(decider: Decider, count: int) -> bool:
    return decider.decided >= count


async def _saved(pool: asyncpg.Pool, count: int) -> bool:
    return await snapshot_rows(pool) >= count


async def _within_limit(decider: Decider, limit: int) -> bool:
    return all(len(m) <= limit for m in decider.states.values())


async def _covers_all(pool: asyncpg.Pool, decider: Decider) -> bool:
    """Every partition's mark has reached where the decider's writes ended."""
    marks = {
        row["partition"]: row["next_offset"]
        for row in await pool.fetch("SELECT partition, next_offset FROM decider_snapshot_marks")
    }
    ends = decider.writer.ends
    return all(marks.get(p, 0) >= end for p, end in ends.items() if end > 0) and not any(
        m.dirty for m in decider.states.values()
    )
