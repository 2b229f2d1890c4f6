"""The decider process: the single writer of `mission.events`.

It consumes `mission.commands` in a consumer group. For each command it folds the
mission's state, `decide`s, stamps the events (sequence, hash chain) and appends them to
the *same partition number* of `mission.events`, a whole command per record batch
(ledger/event_writer.py). A batch of commands' offsets is committed only after their
events are acknowledged (acks=all). A redelivered command appends nothing: the command
ids recorded as causation ids are part of the rebuilt state.

Fail-stop: when a partition's write fails, its in-memory state and every undelivered
decision are dropped, the partition is paused and rebuilt from the log, and deciding
resumes from its committed offset. Newly assigned partitions are rebuilt the same way,
in the background: the rebalance callback only records them, so heartbeats and the other
partitions go on, and a rebuild that fails is retried with backoff and reported in the
heartbeat (and so on the root's /readyz).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from loguru import logger
from opentelemetry.trace import Span

from infra.config import load_settings
from infra.database import service_pool
from infra.heartbeat import beat_forever
from infra.kafka import client_options
from infra.partition_loop import PartitionLoop, group_consumer
from infra.service_runtime import run_service
from infra.structured_logs import configure_logging
from infra.topics import COMMANDS, TopicNames
from infra.tracing import carry_context, configure_tracing, consumer_span
from ledger.codec import AvroCodec
from ledger.dead_letters import DeadLetters
from ledger.event_writer import CommandRecords, EventWriter
from ledger.events import CommandRejected
from ledger.faults import Fault
from ledger.history import why_not_next
from ledger.log_reader import read_to_end
from ledger.settings import DeciderSettings
from ledger.state import MissionState, evolve
from ledger.step import step
from ledger.wire import UNKNOWN_SCHEMA, InvalidRecordError, LedgerWire, misrouted

PartitionStates = dict[str, MissionState]
MAX_BATCH_BYTES = 512 * 1024


class Decider:
    """Owns the mission states of the command partitions assigned to this process (a
    worker of infra/partition_loop.py, which prepares, pauses and resumes partitions)."""

    def __init__(self, settings: DeciderSettings, bootstrap_servers: str) -> None:
        self.settings = settings
        self.topics = TopicNames(settings.KAFKA_TOPIC_PREFIX)
        self.options = client_options(settings, bootstrap_servers)
        self.wire = LedgerWire(AvroCodec())
        self.authority = settings.authority
        self.states: dict[int, PartitionStates] = {}
        self.decided = 0
        self.rebuilds = 0
        self._uncommitted: dict[TopicPartition, OffsetAndMetadata] = {}
        self.producer = AIOKafkaProducer(
            acks="all", linger_ms=0, max_batch_size=MAX_BATCH_BYTES, **self.options
        )
        self.fault = Fault.parse(settings.DECIDER_FAULT)
        self.writer = EventWriter(self.producer, self.topics.events, MAX_BATCH_BYTES, self.fault)
        self.consumer = group_consumer(
            self.options,
            settings.DECIDER_GROUP_ID,
            settings.KAFKA_SESSION_TIMEOUT_MS,
            settings.DECIDER_MAX_BATCH,
        )
        self.loop = PartitionLoop("decider", self.topics.commands, self.consumer, self)
        self.dead_letters = DeadLetters(
            self.producer, self.topics.dead_letters, self.wire.codec, "decider"
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Decide commands until `stop` is set; then commit and leave the group."""
        await self.producer.start()
        try:
            await self.loop.run(stop)
        finally:
            await self.producer.stop()

    async def prepare(self, tp: TopicPartition) -> int:
        """Fold the partition's events; deciding resumes at its committed offset."""
        if self.fault is not None:
            await asyncio.sleep(self.fault.rebuild_delay_s)
        states, ends = await self.rebuild([tp.partition])
        committed = await self.consumer.committed(tp)
        self.states[tp.partition] = states[tp.partition]
        self.writer.ends[tp.partition] = ends[tp.partition]
        self.rebuilds += 1
        return int(committed or 0)

    async def handle(self, tp: TopicPartition, records: list[ConsumerRecord]) -> None:
        """Decide `records` in order, write their events, and make their offsets committable;
        on a failed write, fail stop (see the module docstring)."""
        states = self.states[tp.partition]
        try:
            commands: list[CommandRecords] = []
            for command_record in records:
                events = await self._decide_one(tp.partition, states, command_record)
                if events:
                    commands.append(events)
            await self.writer.write(tp.partition, commands)
        except Exception as error:  # the broker refused or timed out: nothing more is sent
            self.fail_stop(tp, error)
            return
        self._uncommitted[tp] = OffsetAndMetadata(records[-1].offset + 1, "")
        self.decided += len(records)

    def fail_stop(self, tp: TopicPartition, error: Exception) -> None:
        logger.error(
            "writing partition {} failed ({}: {}); its undelivered decisions are dropped and"
            " it is rebuilt from the log before deciding again",
            tp.partition,
            type(error).__name__,
            error,
        )
        self.release({tp.partition})
        self.loop.prepare_again(tp)

    async def flush(self, partitions: set[int] | None) -> None:
        """Commit decided offsets (their events are acknowledged). Committing about once a
        second costs a redelivery after a crash, which the command-id dedupe absorbs."""
        offsets = {
            tp: offset
            for tp, offset in self._uncommitted.items()
            if partitions is None or tp.partition in partitions
        }
        if offsets:
            await self.consumer.commit(offsets)
        for tp in offsets:
            self._uncommitted.pop(tp, None)

    def release(self, partitions: set[int]) -> None:
        for partition in partitions:
            self.states.pop(partition, None)
            self.writer.ends.pop(partition, None)
        for tp in [tp for tp in self._uncommitted if tp.partition in partitions]:
            self._uncommitted.pop(tp)

    async def drain(self) -> None:
        """Nothing runs between batches: every batch's events are acknowledged in turn."""

    async def _decide_one(
        self, partition: int, states: PartitionStates, command_record: ConsumerRecord
    ) -> CommandRecords:
        """The encoded events of one command, each carrying the trace context of its
        decision (none for a dead letter or a redelivery)."""
        with consumer_span("decide", command_record.headers) as span:
            records = await self._decide_in_span(partition, states, command_record, span)
            for record in records:
                carry_context(record.headers)
            return records

    async def _decide_in_span(
        self,
        partition: int,
        states: PartitionStates,
        command_record: ConsumerRecord,
        span: Span,
    ) -> CommandRecords:
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
        span.update_name(f"decide {command.command_type}")
        span.set_attribute("velocity.mission_id", mission_id)
        state = states.get(mission_id) or MissionState(mission_id=mission_id)
        states[mission_id], events = step(state, command, datetime.now(UTC), self.authority)
        if events and isinstance(events[-1].body, CommandRejected):
            logger.bind(mission_id=mission_id, trace_id=command.meta.trace_id).info(
                "{} rejected: {}", command.command_type, events[-1].body.reason
            )
        return [self.wire.encode_event(event) for event in events]

    async def rebuild(
        self, partitions: list[int]
    ) -> tuple[dict[int, PartitionStates], dict[int, int]]:
        return await rebuild_states(self.options, self.topics.events, partitions, self.wire)

    def heartbeat(self) -> dict[str, Any]:
        """What the root's /readyz reads: the partitions this decider serves, and those it
        is still rebuilding (with the last error, if a rebuild failed)."""
        return self.loop.status()


async def rebuild_states(
    options: dict[str, Any], events_topic: str, partitions: list[int], wire: LedgerWire
) -> tuple[dict[int, PartitionStates], dict[int, int]]:
    """Fold every event of `partitions` of the events topic into mission states; with the
    offset each partition ended at (where the decider's next batch must land)."""
    started = asyncio.get_running_loop().time()
    states: dict[int, PartitionStates] = {p: {} for p in partitions}
    ends: dict[int, int] = {}
    if not partitions:
        return states, ends
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
                except InvalidRecordError as error:
                    if error.reason == UNKNOWN_SCHEMA:
                        raise  # history this release cannot read: hold, never decide past it
                    logger.warning(  # not an event: the archive sets it aside
                        "decider skips a record that is no event at {}@{}: {}",
                        tp.partition,
                        event_record.offset,
                        error.reason,
                    )
                    continue
                mission_id = event.meta.mission_id
                current = missions.get(mission_id) or MissionState(mission_id=mission_id)
                why = why_not_next((current.sequence, current.last_hash), event)
                if why is None:
                    missions[mission_id] = evolve(current, event)
                else:
                    logger.bind(mission_id=mission_id).warning(
                        "decider skips a record that is not history at {}@{}: {}",
                        tp.partition,
                        event_record.offset,
                        why,
                    )
            count += len(records)
        for tp in tps:
            ends[tp.partition] = await reader.position(tp)
    finally:
        await reader.stop()
    logger.info(
        "decider rebuilt partitions {}: {} missions from {} events in {:.2f}s",
        sorted(partitions),
        sum(len(m) for m in states.values()),
        count,
        asyncio.get_running_loop().time() - started,
    )
    return states, ends


async def serve(settings: DeciderSettings, stop: asyncio.Event) -> None:
    """The decider with its heartbeat."""
    bootstrap, database_url = settings.require_infrastructure()
    decider = Decider(settings, bootstrap)
    pool = await service_pool(database_url, max_size=2)
    heartbeat = asyncio.create_task(beat_forever(pool, "decider", decider.heartbeat))
    try:
        await decider.run(stop)
    finally:
        heartbeat.cancel()
        await pool.close()


def main() -> None:
    settings = load_settings(DeciderSettings)
    configure_logging(settings, "decider")
    configure_tracing(settings, "decider")
    run_service("decider", lambda stop: serve(settings, stop))


if __name__ == "__main__":
    main()
