"""What must hold before any service starts: topics provisioned, schema at head, and
the broker's event log not behind the database's archive."""

from __future__ import annotations

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient
from loguru import logger

from infra.config import CommonSettings
from infra.kafka import client_options
from infra.progress import Progress
from infra.topics import TopicNames, provision_topics
from ledger.restore import log_ends, missing_from_log, restore_log
from projections.migrate import apply_migrations


class DivergedLedgerError(RuntimeError):
    """The broker holds fewer events than the archive: starting would fork history."""


async def prepare_infrastructure(
    settings: CommonSettings, bootstrap_servers: str, database_url: str, *, restore: bool = False
) -> None:
    """Provision topics, apply migrations, then restore (if asked) or refuse a lagging log.

    `restore=True` is for the embedded, memory-only broker, which is expected to come
    back empty; a real cluster that lost events needs an operator, not a silent refill.
    """
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
        applied = await apply_migrations(connection)
        logger.info("database schema at head ({} migration(s) applied now)", len(applied))
        if restore:
            progress = Progress("restored archived events")
            if await restore_log(options, names, connection, progress.reach):
                progress.finish()
        missing = await missing_from_log(connection, await log_ends(options, names))
    finally:
        await connection.close()
    if missing:
        raise DivergedLedgerError(
            f"{names.events} lacks {missing} events that the PostgreSQL archive holds. Refusing"
            " to start: new events would fork the archived history. Run `velocity ledger"
            " restore` to republish them, or point KAFKA_BOOTSTRAP_SERVERS at the broker that"
            " holds the log."
        )
    logger.info("broker event log is not behind the archive")
