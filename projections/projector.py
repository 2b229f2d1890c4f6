"""The projector process: `mission.events` into PostgreSQL views, exactly once.

Offsets live in `projector_offsets`, written in the batch's transaction; the
consumer group only spreads partitions over projector processes. Each batch re-reads
the stored offsets under a row lock, so a rebuild that resets them is noticed (the
projector seeks back) and a second projector on the same partition cannot apply an
event twice.
"""

from __future__ import annotations

import asyncio
from typing import Any, Generic

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from loguru import logger

from infra.config import load_settings
from infra.database import service_pool
from infra.group_takeover import remove_dead_predecessors
from infra.heartbeat import beat_forever
from infra.kafka import client_options
from infra.partition_loop import BULK_FETCH_BYTES, PartitionLoop, group_consumer
from infra.service_runtime import run_service
from infra.structured_logs import configure_logging
from infra.topics import TopicNames
from infra.tracing import configure_tracing
from ledger.codec import schema_codec
from ledger.dead_letters import DeadLetters
from ledger.log_reader import partition_ends
from projections.batch import BatchApplier, Seeks, transient
from projections.feeds import Feed, all_feeds
from projections.metric_retention import prune_forever
from projections.offsets import resume_positions, save_offsets
from projections.pipeline import ApplyPipeline
from projections.projection import R
from projections.settings import ProjectorSettings

RESET_CHECK_S = 1.0
END_WAIT_S = 5.0
"""The most a reset check waits to learn a partition's end (the broker may be away): past
it, the check is done again at the next one."""
DRAIN_S = 10.0


class Projector(Generic[R]):
    """The live projector: a worker of infra/partition_loop.py feeding its partitions to a
    BatchApplier.

    Every second it also re-reads the stored offsets, so a rebuild that reset them is
    followed even when no new events arrive.
    """

    def __init__(
        self,
        settings: ProjectorSettings,
        bootstrap_servers: str,
        pool: asyncpg.Pool,
        feed: Feed[R],
        stop: asyncio.Event | None = None,
    ) -> None:
        self.topics = TopicNames(settings.KAFKA_TOPIC_PREFIX)
        self.topic = self.topics.of(feed.topic)
        self.feed = feed
        self.beyond_reported: set[int] = set()
        self.pool = pool
        self.lag: dict[int, int] = {}
        self.checked_at = 0.0
        options = client_options(settings, bootstrap_servers)
        self.options = options
        self.producer = AIOKafkaProducer(acks="all", **options)
        self.consumer = group_consumer(
            options,
            settings.PROJECTOR_GROUP_ID + feed.group_suffix,
            settings.KAFKA_SESSION_TIMEOUT_MS,
            settings.PROJECTOR_MAX_BATCH,
            feed.fetch_wait_ms or settings.KAFKA_FETCH_WAIT_MS,
            BULK_FETCH_BYTES,
        )
        self.loop = PartitionLoop(f"projector{feed.group_suffix}", self.topic, self.consumer, self)
        dead_letters = DeadLetters(
            self.producer, self.topics.dead_letters, schema_codec(), "projector"
        )
        stopping = stop.is_set if stop is not None else (lambda: False)
        self.applier = BatchApplier(pool, feed, dead_letters, stopping=stopping)
        self.pipeline = ApplyPipeline(self.applier)

    @property
    def projected(self) -> int:
        return self.applier.applied

    @property
    def assigned(self) -> set[int]:
        return self.loop.ready

    async def run(self, stop: asyncio.Event) -> None:
        """Project until `stop` is set, then drain to the log's end."""
        await self.producer.start()
        try:
            await self.loop.run(stop)
        finally:
            await self.pipeline.abandon()  # left only when the loop stopped on an error
            await self.producer.stop()

    async def prepare(self, tp: TopicPartition) -> int:
        """Resume where the least advanced projection of this partition stands."""
        names = self.applier.names
        position = (await resume_positions(self.pool, self.topic, [tp.partition], names))[
            tp.partition
        ]
        logger.info("projector resumes {}[{}] at {}", self.topic, tp.partition, position)
        return position

    async def handle(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        """The fetch's partitions in one transaction (projections/batch.py), applied while
        the next fetch is decoded (projections/pipeline.py)."""
        self.follow(await self.pipeline.push(batches))

    def follow(self, seeks: Seeks) -> None:
        """Seek back where an applied fetch says; pause a held partition."""
        for tp, offset in seeks.items():
            self.seek_back_to(tp, offset)
            if tp.partition in self.applier.held_at:
                self.consumer.pause(tp)  # until an upgraded projector can read on

    async def flush(self, partitions: set[int] | None) -> None:
        """Offsets are stored with each batch (the one being applied is waited for); here
        lag is measured and, every RESET_CHECK_S, stored offsets compared with positions
        (rebuilds, emptied topics)."""
        self.follow(await self.pipeline.settle())
        await self.measure_lag()
        now = asyncio.get_running_loop().time()
        if partitions is None and now - self.checked_at > RESET_CHECK_S:
            self.checked_at = now
            await self.follow_resets()

    def release(self, partitions: set[int]) -> None:
        for partition in partitions:
            self.lag.pop(partition, None)

    async def project_next(self) -> None:
        batch = await self.consumer.getmany(timeout_ms=200)
        owned = {tp: records for tp, records in batch.items() if tp.partition in self.loop.ready}
        if owned:
            await self.handle(owned)
        await self.measure_lag()

    async def drain(self) -> None:
        """On stop: project what the log holds up to its end, for DRAIN_S at most. The
        stack stops the projector after the decider, so what was decided is archived
        before the memory-only embedded broker goes."""
        deadline = asyncio.get_running_loop().time() + DRAIN_S
        try:
            while asyncio.get_running_loop().time() < deadline:
                await self.measure_lag()
                lags = [self.lag.get(tp.partition) for tp in self.consumer.assignment()]
                if all(lag == 0 for lag in lags):
                    return
                await self.project_next()
            logger.warning(
                "projector stopped {} events short of the log's end", sum(self.lag.values())
            )
        except Exception as error:  # stopping anyway: say why, no traceback
            logger.warning("projector drain cut short: {}: {}", type(error).__name__, error)

    def seek_back_to(self, tp: TopicPartition, offset: int | None) -> None:
        if offset is not None:
            logger.info("projector seeks back to {} on partition {}", offset, tp.partition)
            self.consumer.seek(tp, offset)

    async def follow_resets(self) -> None:
        """Seek back where a rebuild reset stored offsets behind our positions."""
        assignment = list(self.consumer.assignment())
        if not assignment:
            return
        try:
            wanted = await resume_positions(
                self.pool, self.topic, [tp.partition for tp in assignment], self.applier.names
            )
        except Exception as error:
            if not transient(error):
                raise
            logger.warning("reset check skipped: database unavailable ({})", type(error).__name__)
            return
        for tp in assignment:
            end = self.consumer.highwater(tp)
            if end is not None and wanted[tp.partition] > end:
                try:
                    end = await asyncio.wait_for(self.end_now(tp), END_WAIT_S)
                except (TimeoutError, KafkaError) as error:
                    logger.warning(
                        "{}[{}]: its end not learnt ({}); checked again in {} s",
                        self.topic,
                        tp.partition,
                        type(error).__name__,
                        RESET_CHECK_S,
                    )
                    continue
                await self.beyond_end(tp, wanted[tp.partition], end)
            elif wanted[tp.partition] < await self.consumer.position(tp):
                self.seek_back_to(tp, wanted[tp.partition])

    async def end_now(self, tp: TopicPartition) -> int:
        """The partition's end learnt now, from a fetch of a reader of our own. The group
        consumer's high-water mark is its last fetch's: after a stall (a long pause, a
        frozen VM) it is older than offsets another member stored since, which is no sign
        of lost records."""
        reader = AIOKafkaConsumer(enable_auto_commit=False, **self.options)
        await reader.start()
        try:
            return (await partition_ends(reader, [tp]))[tp]
        finally:
            await reader.stop()

    async def beyond_end(self, tp: TopicPartition, stored: int, end: int) -> None:
        """Stored offsets past the partition's end (`end` learnt now): the topic came back
        emptied. Said, and a re-readable topic is read again from its start (never skipped
        silently). Within the end, our view of it was only stale: nothing to do."""
        where = f"{self.topic}[{tp.partition}]"
        if stored <= end:
            logger.info(
                "stored offset {} of {} is within its end {}: this projector's view of the"
                " end was stale (it stalled, or another member projected since)",
                stored,
                where,
                end,
            )
            return
        if not self.feed.rereadable:
            if tp.partition not in self.beyond_reported:
                self.beyond_reported.add(tp.partition)
                logger.error(
                    "stored offset {} of {} is beyond its end {}: the broker lost records the"
                    " archive holds; run `velocity ledger restore`",
                    stored,
                    where,
                    end,
                )
            return
        logger.warning(
            "stored offset {} of {} is beyond its end {}: the topic was emptied (a broker"
            " restart); reading it again from the start",
            stored,
            where,
            end,
        )
        async with self.pool.acquire() as connection:
            await save_offsets(
                connection, self.topic, {(name, tp.partition): 0 for name in self.applier.names}
            )
        self.consumer.seek(tp, 0)

    async def measure_lag(self) -> None:
        """Events fetched-but-unprojected per partition, from the fetch high-water mark."""
        for tp in self.consumer.assignment():
            end = self.consumer.highwater(tp)
            if end is not None:
                self.lag[tp.partition] = max(end - await self.consumer.position(tp), 0)


def projectors(
    settings: ProjectorSettings, bootstrap: str, pool: asyncpg.Pool, stop: asyncio.Event
) -> list[Projector[Any]]:
    """One projector per feed: the ledger's events first, then metrics and dead letters."""
    return [Projector(settings, bootstrap, pool, feed, stop) for feed in all_feeds(settings)]


async def serve(settings: ProjectorSettings, stop: asyncio.Event) -> None:
    """The projectors with their heartbeat."""
    bootstrap, database_url = settings.require_infrastructure()
    pool = await service_pool(database_url, max_size=4)
    projector, *side_feeds = projectors(settings, bootstrap, pool, stop)
    await remove_dead_predecessors(pool, "projector", client_options(settings, bootstrap))
    heartbeat = asyncio.create_task(
        beat_forever(
            pool,
            "projector",
            lambda: {
                "partitions": sorted(projector.assigned),
                "projected": projector.projected,
                "lag": {str(p): n for p, n in projector.lag.items() if p in projector.assigned},
                "held": {str(p): why for p, why in projector.applier.held.items()},
                "members": {
                    group: member
                    for feed in (projector, *side_feeds)
                    for group, member in feed.loop.membership().items()
                },
            },
        )
    )
    pruning = asyncio.create_task(prune_forever(pool, settings.METRICS_SAMPLE_RETENTION_DAYS))
    try:
        await asyncio.gather(projector.run(stop), *(side.run(stop) for side in side_feeds))
    finally:
        heartbeat.cancel()
        pruning.cancel()
        await pool.close()


def main() -> None:
    settings = load_settings(ProjectorSettings)
    configure_logging(settings, "projector")
    configure_tracing(settings, "projector")
    run_service("projector", lambda stop: serve(settings, stop))


if __name__ == "__main__":
    main()
