"""The missions list's filters over a real missions view (projections/queries.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from gateway.console.pages import STATUSES
from projections import queries
from tests.conftest import Isolated
from tests.integration.conftest import prepared

pytestmark = pytest.mark.integration
ROW = """
INSERT INTO missions (mission_id, mission_type, mode, environment, objective, status, stage,
                      time_budget_ms, token_budget, requested_by, correlation_id, trace_id,
                      created_at, updated_at, status_since, last_sequence, last_hash)
VALUES ($1, 'oracle', 'assisted', 'local', 'o', $2, 'tasks', 1, 1, 'r', 'c', 't',
        $3, $3, $3, 1, 'h')
"""


async def test_stuck_lists_open_missions_in_their_status_longer_than_asked(
    isolated: Isolated,
) -> None:
    """ "Stuck for N minutes" names missions still open whose status has not changed for N
    minutes; a mission that ended long ago is not stuck, nor one that just moved."""
    await prepared(isolated)
    now = datetime.now(UTC)
    old, recent = now - timedelta(hours=2), now - timedelta(seconds=5)
    rows = [
        ("waiting", "awaiting_approval", old),
        ("working", "running", old),
        ("moving", "running", recent),
        ("done", "completed", old),
        ("gone", "failed", old),
    ]
    pool = await asyncpg.create_pool(isolated.database_url, min_size=1, max_size=2)
    try:
        await pool.executemany(ROW, rows)
        stuck_before = now - timedelta(minutes=30)
        where = (None, None, None, None, None, stuck_before, None)
        items, _ = await queries.filtered_missions(pool, where, None, 50)
    finally:
        await pool.close()
    assert sorted(item["mission_id"] for item in items) == ["waiting", "working"]


async def test_status_counts_stop_at_the_cap_and_keep_the_other_filters(
    isolated: Isolated,
) -> None:
    """The console's tabs count each status up to a cap (cap + 1 means more), under the
    page's other filters, and leave out statuses with no mission."""
    await prepared(isolated)
    now = datetime.now(UTC)
    rows = [(f"done-{i}", "completed", now) for i in range(7)]
    rows += [("run-1", "running", now), ("run-2", "running", now - timedelta(hours=2))]
    pool = await asyncpg.create_pool(isolated.database_url, min_size=1, max_size=2)
    try:
        await pool.executemany(ROW, rows)
        everything = (None,) * 7
        capped = await queries.status_counts(pool, everything, STATUSES, cap=5)
        exact = await queries.status_counts(pool, everything, STATUSES)
        stuck = (None, None, None, None, None, now - timedelta(minutes=30), None)
        stuck_counts = await queries.status_counts(pool, stuck, STATUSES, cap=5)
        filtered_to_running = ("running", *everything[1:])
        status_ignored = await queries.status_counts(pool, filtered_to_running, STATUSES, cap=5)
    finally:
        await pool.close()
    assert capped == {"completed": 6, "running": 2}
    assert exact == {"completed": 7, "running": 2}
    assert stuck_counts == {"running": 1}
    assert status_ignored == capped, "the tabs count every status, whichever one is shown"
