"""The sweeper times out a mission stuck past MISSION_TIMEOUT_MS, naming its stage, once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

from colony_consumers.sweeper import Sender, sweep_once
from ledger.commands import CommandBody
from tests.conftest import Isolated
from tests.factories import command, request_body
from tests.integration.conftest import (
    CommandSender,
    command_sender,
    eventually,
    ledger_services,
    prepared,
)

pytestmark = pytest.mark.integration


@asynccontextmanager
async def database(slice_: Isolated) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(slice_.database_url, min_size=1, max_size=2)
    try:
        yield pool
    finally:
        await pool.close()


def sweeper_sender(sender: CommandSender) -> Sender:
    """What the colony's sweeper uses: ids derived from mission and step."""

    async def send(target: str, step: str, body: CommandBody) -> None:
        await sender.send(
            command(target, body, command_id=f"{target}/{step}", actor="colony:sweeper")
        )

    return send


async def test_a_stuck_mission_is_timed_out_with_its_stage_once(isolated: Isolated) -> None:
    await prepared(isolated)
    mission_id = str(uuid.uuid4())
    async with ledger_services(isolated), command_sender(isolated) as sender:
        await sender.send(command(mission_id, request_body()))
        async with database(isolated) as pool:
            send = sweeper_sender(sender)
            await eventually(lambda: pool.fetchval("SELECT count(*) FROM missions"))
            assert (
                await sweep_once(pool, send, mission_timeout_ms=60_000, task_timeout_ms=60_000) == 0
            )
            await asyncio.sleep(0.3)
            assert await sweep_once(pool, send, mission_timeout_ms=100, task_timeout_ms=100) == 1
            assert await sweep_once(pool, send, mission_timeout_ms=100, task_timeout_ms=100) <= 1
            row = await eventually(
                lambda: pool.fetchrow(
                    "SELECT status, failure_reason FROM missions WHERE status = 'timed_out'"
                )
            )
            events = await pool.fetch(
                "SELECT event_type FROM ledger_events WHERE mission_id = $1", mission_id
            )
    assert row["failure_reason"] == "timed out in stage intake"
    assert [e["event_type"] for e in events].count("MissionTimedOut") == 1


async def test_a_mission_past_its_time_budget_fails_with_that_reason(isolated: Isolated) -> None:
    await prepared(isolated)
    mission_id = str(uuid.uuid4())
    async with ledger_services(isolated), command_sender(isolated) as sender:
        await sender.send(command(mission_id, request_body(time_budget_ms=200)))
        async with database(isolated) as pool:
            send = sweeper_sender(sender)
            await eventually(lambda: pool.fetchval("SELECT count(*) FROM missions"))
            await asyncio.sleep(0.3)
            await sweep_once(pool, send, mission_timeout_ms=600_000, task_timeout_ms=600_000)
            row = await eventually(
                lambda: pool.fetchrow("SELECT failure_reason FROM missions WHERE status = 'failed'")
            )
    assert row["failure_reason"] == "budget_exceeded: time_ms"
