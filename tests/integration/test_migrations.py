"""Migrations against a real PostgreSQL: clean apply, idempotent re-apply, changed files refused."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from projections.migrate import (
    MigrationError,
    apply_migrations,
    discover,
    pending_migrations,
)
from tests.conftest import Isolated

pytestmark = pytest.mark.integration


async def test_schema_applies_cleanly_then_again_as_a_no_op(isolated: Isolated) -> None:
    connection = await asyncpg.connect(isolated.database_url)
    try:
        first = await apply_migrations(connection)
        second = await apply_migrations(connection)
        assert first == [m.filename for m in discover()]
        assert second == []
        assert await pending_migrations(connection) == []
        tables = {
            r["tablename"]
            for r in await connection.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname='public'"
            )
        }
        assert {"ledger_events", "missions", "projector_offsets", "schema_migrations"} <= tables
    finally:
        await connection.close()


async def test_a_changed_applied_migration_is_an_error_naming_the_file(
    isolated: Isolated, tmp_path: Path
) -> None:
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE first_table (id int);")
    connection = await asyncpg.connect(isolated.database_url)
    try:
        await apply_migrations(connection, discover(tmp_path))
        (tmp_path / "0001_first.sql").write_text("CREATE TABLE first_table (id bigint);")
        with pytest.raises(MigrationError, match=r"0001_first\.sql: changed after it was applied"):
            await apply_migrations(connection, discover(tmp_path))
    finally:
        await connection.close()


async def test_a_failing_migration_leaves_nothing_half_applied(
    isolated: Isolated, tmp_path: Path
) -> None:
    (tmp_path / "0001_ok.sql").write_text("CREATE TABLE ok_table (id int);")
    (tmp_path / "0002_broken.sql").write_text("CREATE TABLE half (id int); SELECT nonsense(;")
    connection = await asyncpg.connect(isolated.database_url)
    try:
        with pytest.raises(asyncpg.PostgresSyntaxError):
            await apply_migrations(connection, discover(tmp_path))
        assert await connection.fetchval("SELECT to_regclass('half')") is None
    finally:
        await connection.close()


def test_a_badly_named_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "add_things.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"add_things\.sql"):
        discover(tmp_path)


async def test_the_event_archive_refuses_updates_and_deletes(isolated: Isolated) -> None:
    connection = await asyncpg.connect(isolated.database_url)
    try:
        await apply_migrations(connection)
        await connection.execute(
            "INSERT INTO ledger_events VALUES ('m', 1, 'e', 'T', now(), 'c', 'c', 't', 'a',"
            " 'p', 'h', '{}'::jsonb, ''::bytea, 0, 0, now())"
        )
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await connection.execute("UPDATE ledger_events SET actor = 'x'")
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await connection.execute("DELETE FROM ledger_events")
    finally:
        await connection.close()


async def test_upgrading_compacts_metric_tables_that_per_sample_counting_bloated(
    isolated: Isolated,
) -> None:
    """A database counted sample by sample (before 0014) holds its few counter rows in
    many pages of dead versions, which scrapes read through; the upgrade rewrites them
    to their live rows, counts unchanged."""
    before = [m for m in discover() if m.version < 14]
    assert discover()[len(before)].filename == "0014_compact_metric_aggregates.sql"
    connection = await asyncpg.connect(isolated.database_url)
    try:
        await apply_migrations(connection, before)
        await connection.execute(
            "INSERT INTO metric_counters VALUES ('velocity_provider_calls', '{}', 0)"
        )
        await connection.executemany(
            "UPDATE metric_counters SET value = value + 1 WHERE family = $1",
            [("velocity_provider_calls",)] * 20_000,
        )
        bloated = await connection.fetchval("SELECT pg_relation_size('metric_counters')")
        await apply_migrations(connection)
        compacted = await connection.fetchval("SELECT pg_relation_size('metric_counters')")
        value = await connection.fetchval("SELECT value FROM metric_counters")
    finally:
        await connection.close()
    assert bloated > 20 * 8192, "the per-sample counting left many pages"
    assert compacted <= 8192
    assert value == 20_000


ENDED = """
INSERT INTO ledger_events (mission_id, sequence, event_id, event_type, occurred_at,
    causation_id, correlation_id, trace_id, actor, prev_hash, hash, data, record,
    topic_partition, topic_offset)
VALUES ($1, 30, $1 || '-ended', $2, now(), 'c', $1, 't', 'a', 'p', 'h', $3::jsonb, '\\x00', 0, $4)
"""
WAITING = """
INSERT INTO approvals (writeback_id, mission_id, target, record_ref, changes, rationale,
                       status, requested_at)
VALUES ($1 || '-wb', $1, 'crm', 'account:northwind', '{}', 'fit', 'pending', now())
"""


async def test_upgrading_withdraws_approvals_their_ended_missions_left_pending(
    isolated: Isolated,
) -> None:
    """Approvals of missions that failed, were cancelled or timed out while they waited
    (before 0018 nothing took them out of the queue) are withdrawn with how the mission
    ended; those of missions still waiting stay pending."""
    before = [m for m in discover() if m.version < 18]
    assert discover()[len(before)].filename == "0018_withdraw_approvals_of_ended_missions.sql"
    ended = [
        ("failed", "MissionFailed", '{"reason": "budget_exceeded: tokens", "stage": "approval"}'),
        ("cancelled", "MissionCancelled", '{"reason": "lead went cold", "stage": "approval"}'),
        ("late", "MissionTimedOut", '{"stage": "approval", "timeout_ms": 900000}'),
    ]
    connection = await asyncpg.connect(isolated.database_url)
    try:
        await apply_migrations(connection, before)
        for offset, (mission_id, event_type, data) in enumerate(ended):
            await connection.execute(ENDED, mission_id, event_type, data, offset)
        for mission_id in ("failed", "cancelled", "late", "waiting"):
            await connection.execute(WAITING, mission_id)
        await apply_migrations(connection)
        rows = await connection.fetch(
            "SELECT mission_id, status, detail FROM approvals ORDER BY mission_id"
        )
    finally:
        await connection.close()
    assert [(r["mission_id"], r["status"], r["detail"]) for r in rows] == [
        ("cancelled", "withdrawn", "the mission was cancelled: lead went cold"),
        ("failed", "withdrawn", "the mission failed: budget_exceeded: tokens"),
        ("late", "withdrawn", "the mission timed out in approval after 900000 ms"),
        ("waiting", "pending", None),
    ]
