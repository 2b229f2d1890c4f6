"""How long metric samples are kept: the counters and histograms hold every sample's
count for good, but each sample's row (kept so that a sample sent again counts once, and
read by the console's provider health) would grow the database by ten rows a mission
forever. Samples older than METRICS_SAMPLE_RETENTION_DAYS are deleted, a slice at a time,
by every projector process (slices skip rows another one is deleting)."""

from __future__ import annotations

import asyncio
from typing import get_args

import asyncpg
from loguru import logger

from infra.database import DATABASE_OUTAGES
from ledger.metrics import MetricName

PRUNE = """
DELETE FROM metric_samples WHERE metric_id IN (
    SELECT metric_id FROM metric_samples
    WHERE name = $1 AND recorded_at < now() - make_interval(days => $2)
    LIMIT $3 FOR UPDATE SKIP LOCKED
)
"""
"""One slice of a name's old samples, found through `metric_samples_by_name`."""
SLICE = 5_000
"""Rows a statement deletes: short transactions, so the projector's own writes to the
table never wait long behind a prune."""
EVERY_S = 600.0


async def prune_samples(pool: asyncpg.Pool, days: int) -> int:
    """Delete every sample recorded more than `days` ago; how many."""
    deleted = 0
    for name in get_args(MetricName):
        while True:
            status = await pool.execute(PRUNE, name, days, SLICE)
            count = int(status.split()[-1])
            deleted += count
            if count < SLICE:
                break
            await asyncio.sleep(0)
    return deleted


async def prune_forever(pool: asyncpg.Pool, days: int) -> None:
    """Prune at start and every EVERY_S until cancelled; an outage waits for the next turn."""
    while True:
        try:
            deleted = await prune_samples(pool, days)
            if deleted:
                logger.info("deleted {} metric samples older than {} days", deleted, days)
        except DATABASE_OUTAGES as error:
            logger.warning("metric samples not pruned: {}", type(error).__name__)
        await asyncio.sleep(EVERY_S)
