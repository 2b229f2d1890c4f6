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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError
from aiokafka.structs import OffsetAndMetadata
from loguru import logger
from opentelemetry.trace import Span

from infra.config import load_settings
from infra.database import DATABASE_OUTAGES, service_pool
from infra.group_takeover import remove_dead_predecessors
from infra.heartbeat import beat_forever
from infra.kafka import client_options
from infra.partition_loop import PartitionLoop, group_consumer
from infra.service_runtime import run_service
from infra.structured_logs import configure_logging
from infra.topics import COMMANDS, TopicNames
from infra.tracing import carry_context, configure_tracing, consumer_span
from ledger.dead_letters import DeadLetters
from ledger.event_writer import CommandRecords, EventWriter
from ledger.events import CommandRejected, RecordedEvent
from ledger.faults import Fault
from ledger.history import why_not_next
from ledger.history_limit import history_full
from ledger.log_reader import read_to_end
from ledger.mission_cache import MissionCache
from ledger.settings import DeciderSettings
from ledger.snapshots import Mark, PartitionSave, SnapshotStore
from ledger.state import MissionState, evolve
from ledger.step import step
from ledger.wire import UNKNOWN_SCHEMA, InvalidRecordError, LedgerWire, misrouted

MAX_BATCH_BYTES = 512 * 1024
LastEvent = tuple[int, str]
"""Offset and hash of a partition's last event (what a snapshot mark records)."""


@dataclass
class Folded:
    """A partition folded from the log: its missions, the offset it ended at (where the
    decider's next batch must land) and its last event."""

    missions: MissionCache
    end: int
    last: LastEvent | None


class Decider:
    """Owns the mission states of the command partitions assigned to this process (a
    worker of infra/partition_loop.py, which prepares, pauses and resumes partitions)."""

    def __init__(
        self,
        settings: DeciderSettings,
        bootstrap_servers: str,
        snapshots: SnapshotStore | None = None,
    ) -> None:
        self.settings = settings
        self.snapshots = snapshots
        self.topics = TopicNames(settings.KAFKA_TOPIC_PREFIX)
        self.options = client_options(settings, bootstrap_servers)
        self.wire = LedgerWire()
        self.authority = settings.authority
        self.states: dict[int, MissionCache] = {}
        self.last_event: dict[int, LastEvent | None] = {}
        self._batch_last: dict[int, str] = {}
        """partition -> hash of the last event decided in the batch being handled."""
        self._marked: dict[int, Mark] = {}
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
            settings.KAFKA_FETCH_WAIT_MS,
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
        folded = await self.rebuild(tp.partition)
        folded.missions.newly_dirty()  # the backlog the snapshot saves in slices
        committed = await self.consumer.committed(tp)
        self.states[tp.partition] = folded.missions
        self.writer.ends[tp.partition] = folded.end
        self.last_event[tp.partition] = folded.last
        self.rebuilds += 1
        return int(committed or 0)

    async def handle(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        """Decide the partitions side by side: they share nothing, and their writes then
        travel in one produce request instead of one after the other."""
        await asyncio.gather(*(self.decide_batch(tp, records) for tp, records in batches.items()))

    async def decide_batch(self, tp: TopicPartition, records: list[ConsumerRecord]) -> None:
        """Decide `records` in order, write their events, and make their offsets committable;
        on a failed write, fail stop (see the module docstring)."""
        states = self.states[tp.partition]
        try:
            known = await self.preload(states, records)
            commands: list[CommandRecords] = []
            for command_record in records:
                events = await self._decide_one(tp.partition, states, known, command_record)
                if events:
                    commands.append(events)
            await self.writer.write(tp.partition, commands)
        except Exception as error:  # the broker refused or timed out: nothing more is sent
            self.fail_stop(tp, error)
            return
        finally:
            last = self._batch_last.pop(tp.partition, None)
        if last is not None:
            self.last_event[tp.partition] = (self.writer.ends[tp.partition] - 1, last)
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
        """Snapshot changed states and commit decided offsets (their events are
        acknowledged). Committing about once a second costs a redelivery after a crash,
        which the command-id dedupe absorbs."""
        await self.snapshot(partitions)
        offsets = {
            tp: offset
            for tp, offset in self._uncommitted.items()
            if partitions is None or tp.partition in partitions
        }
        if offsets:
            try:
                await self.consumer.commit(offsets)
            except CommitFailedError:
                self.membership_lost(set(offsets))
                return
        for tp in offsets:
            self._uncommitted.pop(tp, None)

    def membership_lost(self, partitions: set[TopicPartition]) -> None:
        """The group moved on without this decider (it stalled past its session: a long
        pause, a frozen VM) and refused its commit. What it decided is written; a member
        that took a partition meanwhile wrote after it, so each partition is rebuilt from
        the log before this decider decides on it again (if the rebalance gives it back),
        and its uncommitted commands are redelivered to whoever owns them (their ids are in
        the rebuilt states: applied once)."""
        logger.warning(
            "decider lost its group membership (stalled past KAFKA_SESSION_TIMEOUT_MS?);"
            " partitions {} are rebuilt from the log before deciding again",
            sorted(tp.partition for tp in partitions),
        )
        for tp in partitions:
            self.release({tp.partition})
            self.loop.prepare_again(tp)

    async def snapshot(self, partitions: set[int] | None) -> None:
        """Save the states changed since the last snapshot, then let memory shrink to the
        cache limit (ledger/snapshots.py). The database away, they wait in memory.

        A flush saves the states deciding changed since the last one and
        DECIDER_SNAPSHOT_BATCH more: a backlog (a rebuild that read the whole log, an
        outage) drains by that much a flush, however busy the decider is."""
        if self.snapshots is None:
            return
        flushed = {
            partition: missions
            for partition, missions in self.states.items()
            if partitions is None or partition in partitions
        }
        budget = self.settings.DECIDER_SNAPSHOT_BATCH + sum(
            missions.newly_dirty() for missions in flushed.values()
        )
        saves: list[tuple[MissionCache, PartitionSave]] = []
        for partition, missions in flushed.items():
            last = self.last_event.get(partition)
            mark = Mark(self.writer.ends[partition], *(last or (None, None)))
            if not missions.dirty and self._marked.get(partition) == mark:
                continue
            changed = missions.unsaved()[:budget]
            complete = len(changed) == len(missions.dirty)
            if not changed and not complete:
                continue  # this flush's budget is spent: the next one goes on
            saves.append((missions, PartitionSave(partition, changed, mark if complete else None)))
            budget -= len(changed)
        if not saves:
            return
        try:
            await self.snapshots.save([save for _, save in saves])
        except DATABASE_OUTAGES as error:
            logger.warning("decider snapshots wait: {}", error)
            return
        for missions, save in saves:
            missions.saved(save.states)
            if save.mark is not None:
                self._marked[save.partition] = save.mark

    def release(self, partitions: set[int]) -> None:
        for partition in partitions:
            self.states.pop(partition, None)
            self.last_event.pop(partition, None)
            self._marked.pop(partition, None)
            self.writer.ends.pop(partition, None)
        for tp in [tp for tp in self._uncommitted if tp.partition in partitions]:
            self._uncommitted.pop(tp)

    async def drain(self) -> None:
        """Nothing runs between batches: every batch's events are acknowledged in turn."""

    async def preload(
        self, states: MissionCache, records: list[ConsumerRecord]
    ) -> dict[str, MissionState | None]:
        """The snapshots of the batch's missions not in memory, read together (None: a new
        mission), by the records' keys (a command's key is its mission id)."""
        if self.snapshots is None:
            return {}
        keys = {record.key.decode(errors="replace") for record in records if record.key}
        missing = [mission_id for mission_id in keys if mission_id not in states]
        return await self.snapshots.load_many(missing) if missing else {}

    async def _decide_one(
        self,
        partition: int,
        states: MissionCache,
        known: dict[str, MissionState | None],
        command_record: ConsumerRecord,
    ) -> CommandRecords:
        """The encoded events of one command, each carrying the trace context of its
        decision (none for a dead letter or a redelivery)."""
        with consumer_span("decide", command_record.headers) as span:
            records = await self._decide_in_span(partition, states, known, command_record, span)
            for record in records:
                carry_context(record.headers)
            return records

    async def _decide_in_span(
        self,
        partition: int,
        states: MissionCache,
        known: dict[str, MissionState | None],
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
        state = await self.mission(states, known, mission_id)
        max_events = self.settings.MISSION_MAX_EVENTS
        full = history_full(state, command.meta.command_id, max_events)
        if full is not None:
            await self.dead_letters.publish(command_record, "history_full", full)
            return []
        state, events = step(state, command, datetime.now(UTC), self.authority, max_events)
        states.put(state)
        if events:
            self._batch_last[partition] = events[-1].meta.hash
        if events and isinstance(events[-1].body, CommandRejected):
            logger.bind(mission_id=mission_id, trace_id=command.meta.trace_id).info(
                "{} rejected: {}", command.command_type, events[-1].body.reason
            )
        return [self.wire.encode_event(event) for event in events]

    async def mission(
        self, states: MissionCache, known: dict[str, MissionState | None], mission_id: str
    ) -> MissionState:
        """The mission's state: in memory, else its snapshot (read with the batch's, in
        `known`, or now), else a new mission's."""
        state = states.get(mission_id)
        if state is None and mission_id in known:
            state = known[mission_id]
        elif state is None and self.snapshots is not None:
            state = await self.snapshots.load(mission_id)
        return state or MissionState(mission_id=mission_id)

    async def rebuild(self, partition: int) -> Folded:
        """The partition's missions from its snapshot mark on (or from its start)."""
        limit = self.settings.DECIDER_CACHE_MISSIONS if self.snapshots else None
        mark = await self.usable_mark(partition)
        if mark is None or self.snapshots is None:
            start = Folded(MissionCache(limit), 0, None)
            return await fold_partition(
                self.options, self.topics.events, partition, self.wire, start
            )
        last = None
        if mark.last_offset is not None and mark.last_hash is not None:
            last = (mark.last_offset, mark.last_hash)
        start = Folded(MissionCache(limit), mark.next_offset, last)
        return await fold_partition(
            self.options, self.topics.events, partition, self.wire, start, self.snapshots.load
        )

    async def usable_mark(self, partition: int) -> Mark | None:
        """The partition's snapshot mark, if the log still holds the event it names; a log
        restored or replaced since drops the snapshots (the whole partition is read)."""
        if self.snapshots is None:
            return None
        try:
            mark = await self.snapshots.mark(partition)
            if mark is None or mark.last_offset is None:
                return None
            found = await event_hash_at(
                self.options, self.topics.events, partition, mark.last_offset, self.wire
            )
            if found == mark.last_hash:
                return mark
            logger.warning(
                "partition {}: the log is not the one snapshotted (event {} is {}); its"
                " snapshots are dropped and it is read from the start",
                partition,
                mark.last_offset,
                "missing" if found is None else "another",
            )
            await self.snapshots.forget(partition)
        except DATABASE_OUTAGES as error:
            logger.warning(
                "partition {}: snapshots unreachable ({}); reading it all", partition, error
            )
        return None

    def heartbeat(self) -> dict[str, Any]:
        """What the root's /readyz reads: the partitions this decider serves, and those it
        is still rebuilding (with the last error, if a rebuild failed)."""
        return self.loop.status()


Loader = Callable[[str], Awaitable[MissionState | None]]


async def fold_partition(
    options: dict[str, Any],
    events_topic: str,
    partition: int,
    wire: LedgerWire,
    start: Folded,
    load: Loader | None = None,
) -> Folded:
    """Fold the events of `partition` from `start.end` on into `start.missions`, loading a
    mission's snapshot with `load` the first time one of its events is met (a rebuild
    from a snapshot mark); what was folded, where the partition ended and its last event."""
    started = asyncio.get_running_loop().time()
    missions, last, count = start.missions, start.last, 0
    reader = AIOKafkaConsumer(enable_auto_commit=False, fetch_max_wait_ms=50, **options)
    await reader.start()
    tp = TopicPartition(events_topic, partition)
    try:
        async for _, records in read_to_end(reader, [tp], starts={tp: start.end}):
            for event_record in records:
                event = _event_or_none(wire, event_record)
                if event is None:
                    continue
                mission_id = event.meta.mission_id
                current = missions.get(mission_id) or (await load(mission_id) if load else None)
                current = current or MissionState(mission_id=mission_id)
                if event.meta.sequence <= current.sequence and load is not None:
                    continue  # already in the snapshot (saved after the mark moved)
                why = why_not_next((current.sequence, current.last_hash), event)
                if why is None:
                    missions.put(evolve(current, event))
                    last = (event_record.offset, event.meta.hash)
                else:
                    logger.bind(mission_id=mission_id).warning(
                        "decider skips a record that is not history at {}@{}: {}",
                        partition,
                        event_record.offset,
                        why,
                    )
            count += len(records)
        end = max(await reader.position(tp), start.end)
    finally:
        await reader.stop()
    logger.info(
        "decider rebuilt partition {} from offset {}: {} missions from {} events in {:.2f}s",
        partition,
        start.end,
        len(missions),
        count,
        asyncio.get_running_loop().time() - started,
    )
    return Folded(missions, end, last)


def _event_or_none(wire: LedgerWire, record: ConsumerRecord) -> RecordedEvent | None:
    """The record's event; None for a record that is no event (the archive sets it aside);
    a record of a schema this release cannot read holds the rebuild (never decide past it)."""
    try:
        return wire.decode_event(record.value or b"")
    except InvalidRecordError as error:
        if error.reason == UNKNOWN_SCHEMA:
            raise
        logger.warning(
            "decider skips a record that is no event at {}@{}: {}",
            record.partition,
            record.offset,
            error.reason,
        )
        return None


async def event_hash_at(
    options: dict[str, Any], events_topic: str, partition: int, offset: int, wire: LedgerWire
) -> str | None:
    """The hash of the event at `offset` of the partition; None if there is none there."""
    reader = AIOKafkaConsumer(enable_auto_commit=False, fetch_max_wait_ms=50, **options)
    await reader.start()
    tp = TopicPartition(events_topic, partition)
    try:
        reader.assign([tp])
        reader.seek(tp, offset)
        while True:
            batch = await reader.getmany(tp, timeout_ms=200, max_records=1)
            records = batch.get(tp, [])
            if records:
                event = _event_or_none(wire, records[0]) if records[0].offset == offset else None
                return event.meta.hash if event is not None else None
            end = reader.highwater(tp)
            if end is not None and end <= offset:
                return None
    finally:
        await reader.stop()


async def serve(settings: DeciderSettings, stop: asyncio.Event) -> None:
    """The decider with its heartbeat."""
    bootstrap, database_url = settings.require_infrastructure()
    pool = await service_pool(database_url, max_size=4)
    decider = Decider(settings, bootstrap, SnapshotStore(pool))
    await remove_dead_predecessors(pool, "decider", decider.options)
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
    run_service("decider", lambda stop: serve(settings, stop), release_memory=True)


if __name__ == "__main__":
    main()
