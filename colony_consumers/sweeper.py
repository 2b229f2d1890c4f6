"""The sweeper: missions and tasks stuck past their timeouts get timed-out events naming
the stage they were stuck in, and missions past their time budget are failed by the
ledger with that reason. Operators can then replay them (POST /missions/{id}/replay).

Missions waiting for an operator (awaiting_approval) are not swept: that is the approval
backlog, with its own runbook and dashboard. Writebacks approved a while ago that have no
result yet are handed back to the colony to execute (a safety net: the same derived ids,
so the CRM and the ledger apply them at most once). The sweeper survives any error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
from loguru import logger

from infra.database import sql_list
from ledger.commands import CommandBody, RecordBudgetUse, TimeOutMission, TimeOutTask
from ledger.state import OPEN_STATUSES

STUCK_MISSIONS = """
SELECT mission_id, status, stage, status_since FROM missions
WHERE status IN ('requested', 'planning', 'running', 'in_review')
  AND status_since < now() - make_interval(secs => $1)
"""
STUCK_TASKS = """
SELECT t.mission_id, t.task_id, t.attempt FROM tasks t JOIN missions m USING (mission_id)
WHERE t.status = 'running' AND m.status = 'running'
  AND t.started_at < now() - make_interval(secs => $1)
"""
OVER_TIME_BUDGET = """
SELECT mission_id, time_budget_ms, time_used_ms,
       (extract(epoch FROM now() - created_at) * 1000)::bigint AS elapsed_ms
FROM missions
WHERE status IN ('requested', 'planning', 'running', 'in_review')
  AND created_at < now() - make_interval(secs => time_budget_ms / 1000.0)
"""
STALLED_WRITEBACKS = f"""
SELECT a.mission_id, a.writeback_id FROM approvals a JOIN missions m USING (mission_id)
WHERE a.status = 'approved' AND a.decided_at < now() - make_interval(secs => $1)
  AND m.status IN ({sql_list(OPEN_STATUSES)})
"""
STALLED_AFTER_S = 30.0
Sender = Callable[[str, str, CommandBody], Awaitable[None]]
Executor = Callable[[list[tuple[str, str]]], Awaitable[None]]


async def sweep_once(
    pool: asyncpg.Pool, send: Sender, mission_timeout_ms: int, task_timeout_ms: int
) -> int:
    """Send the timeouts due now; `send(mission_id, step, body)` derives stable ids."""
    swept = 0
    for row in await pool.fetch(STUCK_TASKS, task_timeout_ms / 1000):
        step = f"timeout/{row['task_id']}/{row['attempt']}"
        await send(
            row["mission_id"], step, TimeOutTask(task_id=row["task_id"], timeout_ms=task_timeout_ms)
        )
        swept += 1
    for row in await pool.fetch(OVER_TIME_BUDGET):
        # the wall-clock time not yet accounted by tasks: the ledger then sees the budget
        # exceeded and fails the mission with that reason
        unaccounted = max(row["elapsed_ms"] - row["time_used_ms"], 0)
        body = RecordBudgetUse(tokens=0, time_ms=unaccounted)
        await send(row["mission_id"], "time-budget", body)
        swept += 1
    for row in await pool.fetch(STUCK_MISSIONS, mission_timeout_ms / 1000):
        step = f"timeout/{row['status']}/{row['status_since'].isoformat()}"
        await send(row["mission_id"], step, TimeOutMission(timeout_ms=mission_timeout_ms))
        logger.bind(mission_id=row["mission_id"]).warning(
            "mission stuck in {} since {}: timed out", row["stage"], row["status_since"]
        )
        swept += 1
    return swept


async def stalled_writebacks(pool: asyncpg.Pool, execute: Executor) -> int:
    """Hand approved writebacks without a result (after STALLED_AFTER_S) to `execute`."""
    rows = await pool.fetch(STALLED_WRITEBACKS, STALLED_AFTER_S)
    if rows:
        await execute([(row["mission_id"], row["writeback_id"]) for row in rows])
    return len(rows)


async def sweep_forever(
    pool: asyncpg.Pool,
    send: Sender,
    execute: Executor,
    mission_timeout_ms: int,
    task_timeout_ms: int,
    every_s: float,
) -> None:
    """Sweep every `every_s` until cancelled; no error stops it (each is logged)."""
    while True:
        try:
            await sweep_once(pool, send, mission_timeout_ms, task_timeout_ms)
            await stalled_writebacks(pool, execute)
        except Exception as error:
            logger.warning("sweep skipped: {}: {}", type(error).__name__, error)
        await asyncio.sleep(every_s)
