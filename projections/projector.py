"""The projector process: `mission.events` into PostgreSQL views, exactly once.

Offsets live in `projector_offsets`, written in the batch's transaction; the
consumer group only spreads partitions over projector processes. Each batch re-reads
the stored offsets under a row lock, so a rebuild that resets them is noticed (the
projector seeks back) and a second projector on the same partition cannot apply an
event twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from loguru import logger

from infra.config import load_settings
from infra.heartbeat import beat_forever
from infra.kafka import client_options
from infra.service_runtime import run_service
from infra.structured_logs import configure_logging
from infra.topics import TopicNames
from ledger.codec import AvroCodec
from ledger.dead_letters import DeadLetters
from ledger.wire import InvalidRecordError, LedgerWire
from projections.approvals import ApprovalsProjection
from projections.archive import EventArchive
from projections.evidence import EvidenceProjection
from projections.missions import MissionsProjection
from projections.offsets import StoredOffsets, lock_offsets, resume_positions, save_offsets
from projections.projection import ProjectedEvent, Projection, execute_writes
from projections.settings import ProjectorSettings
from projections.tasks import TasksProjection


def all_projections() -> list[Projection]:
    """Every view the projector maintains, in the order each batch applies them: the
    archive first, missions before the views that look missions up."""
    return [
        EventArchive(),
        MissionsProjection(),
        ApprovalsProjection(),
        TasksProjection(),
        EvidenceProjection(),
    ]


class Projector(ConsumerRebalanceListener):  # type: ignore[misc]
    """Applies batches of events to `projections` with offsets in the same transaction."""

    def __init__(
        self,
        settings: ProjectorSettings,
        bootstrap_servers: str,
        pool: asyncpg.Pool,
        projections: Sequence[Projection] | None = None,
    ) -> None:
        self.topics = TopicNames(settings.KAFKA_TOPIC_PREFIX)
        self.pool = pool
        self.projections = list(projections or all_projections())
        self.names = [p.name for p in self.projections]
        self.wire = LedgerWire(AvroCodec())
        self.projected = 0
        self.assigned: set[int] = set()
        self.lag: dict[int, int] = {}
        options = client_options(settings, bootstrap_servers)
        self.producer = AIOKafkaProducer(acks="all", **options)
        self.consumer = AIOKafkaConsumer(
            group_id=settings.PROJECTOR_GROUP_ID,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=settings.KAFKA_SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=max(settings.KAFKA_SESSION_TIMEOUT_MS // 5, 300),
            max_poll_records=settings.PROJECTOR_MAX_BATCH,
            **options,
        )
        self.dead_letters = DeadLetters(
            self.producer, self.topics.dead_letters, self.wire.codec, "projector"
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Project until `stop` is set."""
        await self.producer.start()
        try:
            await self.consumer.start()
            try:
                self.consumer.subscribe([self.topics.events], listener=self)
                while not stop.is_set():
                    batch = await self.consumer.getmany(timeout_ms=200)
                    for partition, records in batch.items():
                        await self.project_partition(partition, records)
                    await self.measure_lag()
            finally:
                await self.consumer.stop()
        finally:
            await self.producer.stop()

    async def project_partition(self, tp: TopicPartition, records: list[ConsumerRecord]) -> None:
        """Apply `records` of one partition to every projection that has not seen them."""
        decoded = await self._decode(records)
        first, last = records[0].offset, records[-1].offset
        async with self.pool.acquire() as connection, connection.transaction():
            stored = await lock_offsets(connection, tp.topic, [tp.partition], self.names)
            advanced: StoredOffsets = {}
            for projection in self.projections:
                next_offset = stored.get((projection.name, tp.partition), 0)
                if next_offset < first or next_offset > last:
                    continue  # reset behind this batch (seek back below) or already past it
                fresh = [e for e in decoded if e.offset >= next_offset]
                writes = [write for e in fresh for write in projection.writes(e)]
                await execute_writes(connection, writes)
                advanced[(projection.name, tp.partition)] = last + 1
            await save_offsets(connection, tp.topic, advanced)
        self.projected += len(records)
        behind = [stored.get((name, tp.partition), 0) for name in self.names]
        if min(behind) < first:
            logger.info("projector seeks back to {} on partition {}", min(behind), tp.partition)
            self.consumer.seek(tp, min(behind))

    async def measure_lag(self) -> None:
        """Events fetched-but-unprojected per partition, from the fetch high-water mark."""
        for tp in self.consumer.assignment():
            end = self.consumer.highwater(tp)
            if end is not None:
                self.lag[tp.partition] = max(end - await self.consumer.position(tp), 0)

    async def _decode(self, records: list[ConsumerRecord]) -> list[ProjectedEvent]:
        decoded = []
        for item in records:
            try:
                event = self.wire.decode_event(item.value or b"")
            except InvalidRecordError as error:
                await self.dead_letters.publish(item, error.reason, error.detail)
                continue
            decoded.append(ProjectedEvent(item.partition, item.offset, item.value or b"", event))
        return decoded

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.assigned -= {tp.partition for tp in revoked}

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.assigned |= {tp.partition for tp in assigned}
        if not assigned:
            return
        positions = await resume_positions(
            self.pool, self.topics.events, [tp.partition for tp in assigned], self.names
        )
        for tp in assigned:
            self.consumer.seek(tp, positions[tp.partition])
        logger.info("projector resumes at {}", positions)


async def serve(settings: ProjectorSettings, stop: asyncio.Event) -> None:
    """The projector with its heartbeat."""
    bootstrap, database_url = settings.require_infrastructure()
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    projector = Projector(settings, bootstrap, pool)
    heartbeat = asyncio.create_task(
        beat_forever(
            pool,
            "projector",
            lambda: {
                "partitions": sorted(projector.assigned),
                "projected": projector.projected,
                "lag": {str(p): n for p, n in projector.lag.items() if p in projector.assigned},
            },
        )
    )
    try:
        await projector.run(stop)
    finally:
        heartbeat.cancel()
        await pool.close()


def main() -> None:
    settings = load_settings(ProjectorSettings)
    configure_logging(settings, "projector")
    run_service("projector", lambda stop: serve(settings, stop))


if __name__ == "__main__":
    main()
