"""Rebuilding projections from the log: empty the views, reset their offsets, replay.

Strict: the first event a view cannot apply stops the rebuild with its position, type
and error (the live projector would park it; a rebuild is a statement that the views are
whole). Parked events of the rebuilt views are dropped, since the replay covers them.

Safe beside a running projector: the reset takes the offset rows' locks and sets them
to 0 (rows kept, so every later batch still serialises on them), the live projector
seeks back when it sees the reset, and whichever of it and the rebuild applies a batch
first advances the offsets so the other skips it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from infra.config import CommonSettings
from infra.database import Connection
from infra.kafka import client_options
from infra.progress import Progress
from infra.topics import EVENTS, TopicNames
from ledger.codec import schema_codec
from ledger.dead_letters import DeadLetters
from ledger.events import RecordedEvent
from ledger.log_reader import fetches_to_end, partition_ends
from projections.batch import BatchApplier, ProjectionFailedError
from projections.feeds import all_projections, ledger_feed
from projections.offsets import save_offsets
from projections.pipeline import ApplyPipeline
from projections.projection import Projection


class RebuildError(ValueError):
    """A projection name that cannot be rebuilt; the message says why."""


def choose(name: str | None) -> list[Projection[RecordedEvent]]:
    """The projections to rebuild: `name`, or every rebuildable one."""
    projections = all_projections()
    if name is None:
        return [p for p in projections if p.rebuildable]
    chosen = [p for p in projections if p.name == name]
    if not chosen:
        names = ", ".join(p.name for p in projections if p.rebuildable)
        raise RebuildError(f"no projection {name!r}; choose from: {names}")
    if not chosen[0].rebuildable:
        raise RebuildError(f"{name} is the append-only ledger archive; it is never rebuilt")
    return chosen


async def reset(
    connection: Connection, topic: str, projections: Sequence[Projection[RecordedEvent]]
) -> None:
    """Empty the projections' tables and set their offsets to 0, in one transaction."""
    names = [p.name for p in projections]
    async with connection.transaction():
        await connection.execute(
            "SELECT 1 FROM projector_offsets WHERE topic = $1 AND projector = ANY($2::text[])"
            " FOR UPDATE",
            topic,
            names,
        )
        tables = [t for p in projections for t in p.tables]
        await connection.execute(f"TRUNCATE {', '.join(tables)}")
        await connection.execute(
            "DELETE FROM projection_parked WHERE topic = $1 AND projection = ANY($2::text[])",
            topic,
            names,
        )
        zero = {(name, p): 0 for name in names for p in range(EVENTS.partitions)}
        await save_offsets(connection, topic, zero)


async def rebuild(
    options: dict[str, Any],
    names: TopicNames,
    pool: asyncpg.Pool,
    projections: Sequence[Projection[RecordedEvent]],
) -> int:
    """Reset `projections` and replay the whole events topic into them; events read."""
    async with pool.acquire() as connection:
        await reset(connection, names.events, projections)
    producer = AIOKafkaProducer(acks="all", **options)
    consumer = AIOKafkaConsumer(enable_auto_commit=False, fetch_max_wait_ms=50, **options)
    dead_letters = DeadLetters(producer, names.dead_letters, schema_codec(), "rebuild")
    applier = BatchApplier(pool, ledger_feed(), dead_letters, projections=projections, strict=True)
    pipeline = ApplyPipeline(applier)
    await producer.start()
    await consumer.start()
    try:
        partitions = [TopicPartition(names.events, p) for p in range(EVENTS.partitions)]
        total = sum((await partition_ends(consumer, partitions)).values())
        progress = Progress(f"rebuilding {', '.join(p.name for p in projections)}", total)
        async for batches in fetches_to_end(consumer, partitions):
            await pipeline.push(batches)
            progress.advance(sum(len(records) for records in batches.values()))
        await pipeline.settle()
        progress.finish()
        return applier.applied
    finally:
        await pipeline.abandon()
        await consumer.stop()
        await producer.stop()


async def rebuild_from_cli(
    settings: CommonSettings,
    bootstrap: str,
    database_url: str,
    projections: list[Projection[RecordedEvent]],
) -> int:
    """`velocity projections rebuild`: exit code 0 once the views are rebuilt."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        started = time.monotonic()
        names = TopicNames(settings.KAFKA_TOPIC_PREFIX)
        count = await rebuild(client_options(settings, bootstrap), names, pool, projections)
    except ProjectionFailedError as error:
        print(f"velocity: rebuild stopped: {error}", file=sys.stderr)  # noqa: T201
        return 1
    finally:
        await pool.close()
    chosen = ", ".join(p.name for p in projections)
    print(f"rebuilt {chosen} from {count} events in {time.monotonic() - started:.1f}s")  # noqa: T201
    return 0
