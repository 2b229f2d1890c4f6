"""Parked events: what a view could not apply, per (view, mission), and getting them back.

The projector parks the first event of a mission a view fails on (a data or constraint
error: the same event fails the same way every time) with its error, and every later
event of that mission for that view behind it, in offset order; other missions keep
flowing. `retry` re-applies a mission's parked events in order once the cause is fixed
(stopping at the first that still fails); `evict` drops the head event from the view for
good, recording who and why, then retries the rest. Both take the same offset-row lock as
the projector's batches, so they never interleave with the live projector.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import asyncpg

from infra.database import Connection, Queryable
from projections.offsets import lock_offsets
from projections.projection import Projected, Projection, Write, execute_writes

DETERMINISTIC_CLASSES = ("22", "23")  # data exception, integrity constraint violation

PARK = """
INSERT INTO projection_parked (projection, topic, partition, topic_offset, parking_key,
                               sequence, event_type, error, record)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING
"""
PARKED_KEYS = """
SELECT DISTINCT projection, parking_key FROM projection_parked
WHERE topic = $1 AND partition = ANY($2::int[]) AND projection = ANY($3::text[])
"""
SUMMARY = """
SELECT projection, topic, parking_key, count(*) AS events, min(parked_at) AS since,
       (array_agg(event_type ORDER BY topic_offset))[1] AS first_event,
       (array_agg(sequence ORDER BY topic_offset))[1] AS first_sequence,
       (array_agg(partition ORDER BY topic_offset))[1] AS partition,
       min(topic_offset) AS first_offset,
       (array_agg(error ORDER BY topic_offset))[1] AS error,
       max(attempts) AS attempts
FROM projection_parked
WHERE ($1::text IS NULL OR projection = $1) AND ($2::text IS NULL OR parking_key = $2)
GROUP BY projection, topic, parking_key ORDER BY min(parked_at)
"""
QUEUE = """
SELECT * FROM projection_parked WHERE projection = $1 AND topic = $2 AND parking_key = $3
ORDER BY topic_offset FOR UPDATE
"""
FAILED_AGAIN = """
UPDATE projection_parked SET error = $5, attempts = attempts + 1, last_tried_at = now()
WHERE projection = $1 AND topic = $2 AND partition = $3 AND topic_offset = $4
"""
UNPARK = """
DELETE FROM projection_parked
WHERE projection = $1 AND topic = $2 AND partition = $3 AND topic_offset = $4
"""
EVICTED = """
INSERT INTO projection_evictions (projection, topic, partition, topic_offset, parking_key,
                                  sequence, event_type, error, record, evicted_by, reason)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
"""


def deterministic(error: BaseException) -> bool:
    """A data or constraint error: the same event would fail the same way on every try."""
    return isinstance(error, asyncpg.PostgresError) and str(error.sqlstate or "")[:2] in (
        DETERMINISTIC_CLASSES
    )


def describe(error: BaseException) -> str:
    """The error as stored and shown: its class and message, without connection details."""
    return f"{type(error).__name__}: {error}"[:1_000]


def park_write(projection: str, topic: str, item: Projected[Any], error: str | None) -> Write:
    """The row that parks `item` for `projection` (error None: waiting behind another)."""
    args = (
        projection,
        topic,
        item.partition,
        item.offset,
        item.key,
        item.sequence,
        item.kind,
        error,
        item.raw,
    )
    return (PARK, args)


async def parked_keys(
    connection: Connection, topic: str, partitions: list[int], projections: list[str]
) -> dict[str, set[str]]:
    """projection -> keys (missions) with events parked in these partitions."""
    rows = await connection.fetch(PARKED_KEYS, topic, partitions, projections)
    found: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        found[row["projection"]].add(row["parking_key"])
    return found


async def summary(
    connection: Queryable, projection: str | None = None, key: str | None = None
) -> list[dict[str, Any]]:
    """One row per parked (projection, mission): how many events, since when, the first
    event and its error."""
    return [dict(row) for row in await connection.fetch(SUMMARY, projection, key)]


@dataclass(frozen=True)
class RetryOutcome:
    """What a retry of one (projection, mission) did."""

    projection: str
    key: str
    applied: int
    still_parked: int
    error: str | None


async def retry(
    connection: Connection,
    projection: Projection[Any],
    topic: str,
    key: str,
    decode: Any,
) -> RetryOutcome:
    """Re-apply `key`'s parked events for `projection` in order, in one transaction,
    stopping at the first that still fails. `decode` turns a row into a Projected."""
    async with connection.transaction():
        rows = await connection.fetch(QUEUE, projection.name, topic, key)
        if rows:
            partitions = sorted({row["partition"] for row in rows})
            await lock_offsets(connection, topic, partitions, [projection.name])
        applied = 0
        for row in rows:
            error = await _apply_one(connection, projection, decode(row))
            position = (projection.name, topic, row["partition"], row["topic_offset"])
            if error is not None:
                await connection.execute(FAILED_AGAIN, *position, error)
                return RetryOutcome(projection.name, key, applied, len(rows) - applied, error)
            await connection.execute(UNPARK, *position)
            applied += 1
    return RetryOutcome(projection.name, key, applied, 0, None)


async def _apply_one(
    connection: Connection, projection: Projection[Any], item: Projected[Any]
) -> str | None:
    """Apply one event in a savepoint; the error if it fails deterministically."""
    try:
        writes = projection.writes(item) + projection.batch_writes([item])
        async with connection.transaction():
            await execute_writes(connection, writes)
    except Exception as error:  # a pure projection that raises fails this event every time
        if isinstance(error, asyncpg.PostgresError | OSError) and not deterministic(error):
            raise
        return describe(error)
    return None


async def evict_head(
    connection: Connection, projection: str, topic: str, key: str, operator: str, reason: str
) -> dict[str, Any] | None:
    """Drop the first parked event of `key` from `projection` for good, recorded with who
    and why; the row evicted, or None when nothing is parked."""
    async with connection.transaction():
        rows = await connection.fetch(QUEUE, projection, topic, key)
        if not rows:
            return None
        head = rows[0]
        await lock_offsets(connection, topic, [head["partition"]], [projection])
        await connection.execute(
            EVICTED,
            projection,
            topic,
            head["partition"],
            head["topic_offset"],
            key,
            head["sequence"],
            head["event_type"],
            head["error"],
            head["record"],
            operator,
            reason,
        )
        await connection.execute(UNPARK, projection, topic, head["partition"], head["topic_offset"])
    return dict(head)
