"""The missions list's filters over a real missions view (projections/queries.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

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
