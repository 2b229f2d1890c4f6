"""The decider process: the single writer of `mission.events`.

It consumes `mission.commands` in a consumer group. For each command it folds the
mission's state, `decide`s, stamps the events (sequence, hash chain) and appends
them to the *same partition number* of `mission.events`. A command's offset is
committed only after its events are acknowledged (acks=all). After a crash or a
rebalance, state is rebuilt from `mission.events`, and the command ids recorded as
causation ids make a redelivered command append nothing.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.structs import OffsetAndMetadata
from loguru import logger

from infra.config import load_settings
from infra.heartbeat import beat_forever
from infra.kafka import client_options
from infra.service_runtime import run_service
from infra.structured_logs import configure_logging
from infra.topics import COMMANDS, TopicNames
from ledger.codec import AvroCodec
from ledger.dead_letters import DeadLetters
from ledger.events import CommandRejected
from ledger.log_reader import read_to_end
from ledger.settings import DeciderSettings
from ledger.state import MissionState, evolve
from ledger.step import step
from ledger.wire import InvalidRecordError, LedgerWire, misrouted

PartitionStates = dict[str, MissionState]
COMMIT_INTERVAL_S = 1.0
FETCH_WAIT_MS = 25  # an idle partition answers fast: intake latency, not throughput
MAX_IN_FLIGHT = 20_000  # unacknowledged events before the decider waits for the broker


class Decider(ConsumerRebalanceListener):  # type: ignore[misc]
    """Owns the mission states of the command partitions assigned to this process."""

    def __init__(self, settings: DeciderSettings, bootstrap_servers: str) -> None:
        self.settings = settings
        self.topics = TopicNames(settings.KAFKA_TOPIC_PREFIX)
        self.options = client_options(settings, bootstrap_servers)
        self.wire = LedgerWire(AvroCodec())
        self.authority = settings.authority
        self.states: dict[int, PartitionStates] = {}
        self.decided = 0
        self._uncommitted: dict[TopicPartition, OffsetAndMetadata] = {}
        self._in_flight: list[tuple[dict[TopicPartition, OffsetAndMetadata], list[Any]]] = []
        self._sending = 0
        self._committed_at = 0.0
        self._turn = asyncio.Lock()  # a rebalance waits for the batch in flight
        # a batch's events are awaited together, so lingering a few ms only fills batches
        self.producer = AIOKafkaProducer(
            acks="all", linger_ms=5, max_batch_size=512 * 1024, **self.options
        )
        self.consumer = AIOKafkaConsumer(
            group_id=settings.DECIDER_GROUP_ID,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=settings.KAFKA_SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=max(settings.KAFKA_SESSION_TIMEOUT_MS // 5, 300),
            max_poll_records=settings.DECIDER_MAX_BATCH,
            fetch_max_wait_ms=FETCH_WAIT_MS,
            **self.options,
        )
        self.dead_letters = DeadLetters(
            self.producer, self.topics.dead_letters, self.wire.codec, "decider"
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Decide commands until `stop` is set; then finish the batch and leave the group."""
        await self.producer.start()
        try:
            await self.consumer.start()
            try:
                self.consumer.subscribe([self.topics.commands], listener=self)
                while not stop.is_set():
                    batch = await self.consumer.getmany(timeout_ms=200)
                    async with self._turn:
                        await self.decide_batch(batch)
                        await self.settle(everything=self._sending > MAX_IN_FLIGHT)
                        await self.commit(force=False)
                async with self._turn:
                    await self.settle(everything=True)
                    await self.commit(force=True)
            finally:
                await self.consumer.stop()
        finally:
            await self.producer.stop()

    async def decide_batch(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        """Send the events of every command in `batch`.

        The acknowledgements are not awaited here: the next batch is decided while
        these are in flight (the state already holds their events). Only `settle` makes
        the batch's offsets committable, once every one of its events is acknowledged.
        """
        sends: list[asyncio.Future[Any]] = []
        decided: dict[TopicPartition, OffsetAndMetadata] = {}
        for partition, records in batch.items():
            if partition.partition not in self.states:
                continue  # revoked while the batch was fetched; the new owner decides it
            for command_record in records:
                sends.extend(await self._decide_one(partition.partition, command_record))
            decided[partition] = OffsetAndMetadata(records[-1].offset + 1, "")
        if decided:
            self._in_flight.append((decided, sends))
            self._sending += len(sends)

    async def settle(self, everything: bool) -> None:
        """Make acknowledged batches' offsets committable, oldest first.

        With `everything`, wait for every batch in flight. A failed send raises: the
        process stops without committing, and its restart re-decides from the log.
        """
        while self._in_flight:
            offsets, sends = self._in_flight[0]
            if not everything and not all(send.done() for send in sends):
                return
            await asyncio.gather(*sends)
            self._uncommitted.update(offsets)
            self._sending -= len(sends)
            self._in_flight.pop(0)

    async def commit(self, force: bool, only: list[TopicPartition] | None = None) -> None:
        """Commit decided offsets, at most every COMMIT_INTERVAL_S unless `force`.

        Committing less often than every batch costs a redelivery after a crash, which
        the command-id dedupe makes harmless, and saves a round trip per batch.
        """
        now = asyncio.get_running_loop().time()
        if not self._uncommitted or (not force and now - self._committed_at < COMMIT_INTERVAL_S):
            return
        offsets = {
            tp: offset for tp, offset in self._uncommitted.items() if only is None or tp in only
        }
        if offsets:
            await self.consumer.commit(offsets)
        for tp in offsets:
            self._uncommitted.pop(tp, None)
        self._committed_at = now

    async def _decide_one(self, partition: int, command_record: ConsumerRecord) -> list[Any]:
        try:
            command = self.wire.decode_command(command_record.value or b"")
        except InvalidRecordError as error:
            await self.dead_letters.publish(command_record, error.reason, error.detail)
            return []
        mission_id = command.meta.mission_id
        wrong = misrouted(command_record.key, partition, mission_id, COMMANDS.partitions)
        if wrong is not None:
            await self.dead_letters.publish(command_record, "wrong_partition", wrong)
            return []
        states = self.states[partition]
        state = states.get(mission_id) or MissionState(mission_id=mission_id)
        states[mission_id], events = step(state, command, datetime.now(UTC), self.authority)
        sends = []
        for event in events:
            out = self.wire.encode_event(event)
            sends.append(
                await self.producer.send(
                    self.topics.events, out.value, out.key, partition, headers=out.headers
                )
            )
        self.decided += 1
        if events and isinstance(events[-1].body, CommandRejected):
            logger.bind(mission_id=mission_id, trace_id=command.meta.trace_id).info(
                "{} rejected: {}", command.command_type, events[-1].body.reason
            )
        return sends

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self._turn:
            await self.settle(everything=True)
            await self.commit(force=True, only=revoked)
            for partition in revoked:
                self.states.pop(partition.partition, None)
        if revoked:
            logger.info("decider released partitions {}", sorted(p.partition for p in revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        async with self._turn:
            self.states.update(await self.rebuild([tp.partition for tp in assigned]))

    async def rebuild(self, partitions: list[int]) -> dict[int, PartitionStates]:
        return await rebuild_states(self.options, self.topics.events, partitions, self.wire)


async def rebuild_states(
    options: dict[str, Any], events_topic: str, partitions: list[int], wire: LedgerWire
) -> dict[int, PartitionStates]:
    """Fold every event of `partitions` of the events topic into mission states."""
    started = asyncio.get_running_loop().time()
    states: dict[int, PartitionStates] = {p: {} for p in partitions}
    if not partitions:
        return states
    reader = AIOKafkaConsumer(enable_auto_commit=False, fetch_max_wait_ms=50, **options)
    await reader.start()
    count = 0
    try:
        tps = [TopicPartition(events_topic, p) for p in partitions]
        async for tp, records in read_to_end(reader, tps):
            missions = states[tp.partition]
            for event_record in records:
                try:
                    event = wire.decode_event(event_record.value or b"")
                except InvalidRecordError as error:  # not an event: the archive sets it aside
                    logger.warning(
                        "decider skips a record that is no event at {}@{}: {}",
                        tp.partition,
                        event_record.offset,
                        error.reason,
                    )
                    continue
                mission_id = event.meta.mission_id
                current = missions.get(mission_id) or MissionState(mission_id=mission_id)
                missions[mission_id] = evolve(current, event)
            count += len(records)
    finally:
        await reader.stop()
    logger.info(
        "decider rebuilt partitions {}: {} missions from {} events in {:.2f}s",
        sorted(partitions),
        sum(len(m) for m in states.values()),
        count,
        asyncio.get_running_loop().time() - started,
    )
    return states


async def serve(settings: DeciderSettings, stop: asyncio.Event) -> None:
    """The decider with its heartbeat."""
    bootstrap, database_url = settings.require_infrastructure()
    decider = Decider(settings, bootstrap)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    heartbeat = asyncio.create_task(
        beat_forever(pool, "decider", lambda: {"partitions": sorted(decider.states)})
    )
    try:
        await decider.run(stop)
    finally:
        heartbeat.cancel()
        await pool.close()


def main() -> None:
    settings = load_settings(DeciderSettings)
    configure_logging(settings, "decider")
    run_service("decider", lambda stop: serve(settings, stop))


if __name__ == "__main__":
    main()
