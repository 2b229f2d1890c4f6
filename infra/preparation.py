"""What must hold before any service starts: topics provisioned, schema at head, and
the broker's log not behind the database's archive."""

from __future__ import annotations

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from loguru import logger

from infra.config import CommonSettings
from infra.kafka import client_options
from infra.topics import EVENTS, TopicNames, provision_topics
from ledger.log_reader import partition_ends
from projections.migrate import apply_migrations


class DivergedLedgerError(RuntimeError):
    """The broker holds fewer events than the archive: starting would fork history."""


async def prepare_infrastructure(
    settings: CommonSettings, bootstrap_servers: str, database_url: str
) -> None:
    """Provision topics, apply migrations, and refuse to run on a broker behind the archive."""
    options = client_options(settings, bootstrap_servers)
    names = TopicNames(settings.KAFKA_TOPIC_PREFIX)
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        await provision_topics(admin, names, replication_factor=settings.KAFKA_REPLICATION_FACTOR)
    finally:
        await admin.close()
    connection = await asyncpg.connect(database_url)
    try:
        await apply_migrations(connection)
        archived = await archived_ends(connection)
    finally:
        await connection.close()
    await check_broker_not_behind(options, names, archived)


async def archived_ends(connection: asyncpg.Connection) -> dict[int, int]:
    """Per partition, one past the highest offset the archive holds."""
    rows = await connection.fetch(
        "SELECT topic_partition, max(topic_offset) + 1 AS end_offset"
        " FROM ledger_events GROUP BY topic_partition"
    )
    return {row["topic_partition"]: row["end_offset"] for row in rows}


async def check_broker_not_behind(
    options: dict[str, object], names: TopicNames, archived: dict[int, int]
) -> None:
    """Raise DivergedLedgerError if any events partition ends before the archive does."""
    if not archived:
        return
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **options)
    await consumer.start()
    try:
        partitions = [TopicPartition(names.events, p) for p in range(EVENTS.partitions)]
        ends = await partition_ends(consumer, partitions)
    finally:
        await consumer.stop()
    behind = {
        tp.partition: (ends[tp], archived[tp.partition])
        for tp in partitions
        if ends[tp] < archived.get(tp.partition, 0)
    }
    if behind:
        detail = ", ".join(f"partition {p}: log {log} < archive {arc}" for p, (log, arc) in behind.items())
        raise DivergedLedgerError(
            f"the broker's {names.events} is behind the PostgreSQL archive ({detail}); the embedded"
            " broker keeps data in memory only and came back empty. Refusing to start: new"
            " events would fork the archived history. Restore the broker from the archive"
            " (`velocity ledger restore`) or point KAFKA_BOOTSTRAP_SERVERS at the broker that"
            " holds the log."
        )
    logger.info("broker log is not behind the archive")
