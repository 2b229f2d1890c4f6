"""The colony's reactor process: reads `mission.events`, does the work, sends commands.

It never writes events. It consumes in a consumer group (run more copies to share
partitions) and keeps each mission's file folded from its events. Each event's reaction
runs on its own, so a slow model call holds up no other mission; a reaction that fails
is retried with backoff (an outage of the root, PostgreSQL or the broker is waited out
within the mission's time budget and spends no task attempt), and one that keeps failing
fails its mission with the reason. Nothing is dropped.

Consumed offsets live in PostgreSQL (`projector_offsets`, as `colony:<group>`), never past
an event whose reaction has not finished (colony_consumers/in_flight.py). A newly owned
partition is paused, the missions still open at the stored offset folded without
reacting (read from the fold mark stored with that offset: fold_marks.py,
open_histories.py), then resumed from there; a restart or a restore therefore re-runs
only unfinished reactions, whose command ids are derived from the events, so the ledger
applies each step once.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from cachetools import LRUCache
from loguru import logger
from opentelemetry import trace
from opentelemetry.context import Context

from colony_consumers.admission import AdmissionBook
from colony_consumers.fold_marks import FoldMarks
from colony_consumers.in_flight import InFlight
from colony_consumers.measurements import measurements
from colony_consumers.metric_emitter import MetricEmitter
from colony_consumers.mission_file import MissionFile
from colony_consumers.open_histories import OpenHistories
from colony_consumers.outages import OUTAGES, is_outage
from colony_consumers.policy import PolicyContext
from colony_consumers.reactions import (
    ApplyWriteback,
    Reaction,
    Send,
    first_moves,
    policy_context,
    react,
)
from colony_consumers.settings import ColonySettings
from colony_consumers.worker import Worker
from infra.partition_loop import PartitionLoop, group_consumer
from infra.topics import TopicNames
from infra.tracing import event_context, record_interval, work_span
from ledger.commands import FailMission, QueueMission
from ledger.dead_letters import DeadLetters
from ledger.events import EventMeta, MissionRequested, RecordedEvent
from ledger.history import why_not_next
from ledger.release import is_release_stream, production_writebacks_open
from ledger.text import cleaned
from ledger.wire import InvalidRecordError, LedgerWire
from projections.offsets import save_offsets

TIMED_SPANS = {"stage_latency": "stage {stage}", "approval_wait": "approval wait"}
"""Measurements that are also spans: how long a mission spent in a stage, or waiting for
an operator's decision."""
ENDED_KEPT = 10_000
"""Missions that ended lately, remembered by id only: their later events (a replay
request, a late command's rejection) are expected and ignored quietly. Bounded so memory
stays flat however long the log (at 100,000 the soak's RSS grew ~20 MB with 90,000 ended
missions); a later event of a mission that ended before these is known by its sequence
(the colony never saw its start)."""
HISTORY_FETCH_BYTES = 8 * 1024 * 1024
"""A partition's history is read in big fetches: it is mostly skipped, undecoded."""
REACTION_ATTEMPTS = 5  # failures that are not outages, before the mission is failed
DRAIN_S = 5.0
ROLLOUT_STEP = "SELECT step FROM rollout_steps WHERE environment = $1"
STORED_OFFSET = """
SELECT next_offset FROM projector_offsets WHERE projector = $1 AND topic = $2 AND partition = $3
"""
STORED_MARK = """
SELECT fold_from FROM colony_fold_marks WHERE consumer = $1 AND topic = $2 AND partition = $3
"""
SAVE_MARK = """
INSERT INTO colony_fold_marks (consumer, topic, partition, fold_from) VALUES ($1, $2, $3, $4)
ON CONFLICT (consumer, topic, partition) DO UPDATE SET fold_from = EXCLUDED.fold_from
"""


def backoff_s(attempt: int) -> float:
    """0.5 s doubling to 10 s, with jitter so retries after an outage do not stampede."""
    return float(min(0.5 * 2 ** (attempt - 1), 10.0) * random.uniform(0.8, 1.2))


class Colony:
    """The colony's reactions over the event partitions it owns (a worker of
    infra/partition_loop.py, which prepares, pauses and resumes partitions)."""

    def __init__(
        self,
        settings: ColonySettings,
        options: dict[str, Any],
        pool: asyncpg.Pool,
        worker: Worker,
        producer: AIOKafkaProducer,
        metrics: MetricEmitter,
    ) -> None:
        self.settings = settings
        self.options = options
        self.topics = TopicNames(settings.KAFKA_TOPIC_PREFIX)
        self.pool = pool
        self.worker = worker
        self.wire = LedgerWire()
        self.metrics = metrics
        self.offsets_name = f"colony:{settings.COLONY_GROUP_ID}"
        self.files: dict[str, MissionFile] = {}
        """Missions being worked; a mission's file is dropped when it ends (`settle`)."""
        self.ended: LRUCache[str, bool] = LRUCache(maxsize=ENDED_KEPT)
        self.home: dict[str, int] = {}
        self.starting: set[str] = set()
        self.slots = AdmissionBook()
        self.rollout_step = 1
        """This environment's rollout step in the ledger (watch_rollout keeps it current)."""
        self.in_flight = InFlight()
        self.marks = FoldMarks()
        self.tasks: dict[int, set[asyncio.Task[None]]] = defaultdict(set)
        self.redoing: set[str] = set()
        self.max_in_flight = max(
            100, 4 * settings.MAX_CONCURRENT_MISSIONS * settings.MAX_WORKERS_PER_MISSION
        )
        self.producer = producer
        self.dead_letters = DeadLetters(
            producer, self.topics.dead_letters, self.wire.codec, "colony"
        )
        self.loop: PartitionLoop | None = None  # made by `run`

    @property
    def partitions(self) -> set[int]:
        return set(self.loop.ready) if self.loop else set()

    def heartbeat(self) -> dict[str, Any]:
        """What the root's /readyz reads (the partitions served), and the group membership
        a restart after a crash removes (infra/group_takeover.py)."""
        membership = self.loop.membership() if self.loop else {}
        return {"partitions": sorted(self.partitions), "members": membership}

    @property
    def consumer(self) -> AIOKafkaConsumer:
        assert self.loop is not None, "the colony is not running"
        return self.loop.consumer

    async def run(self, stop: asyncio.Event) -> None:
        """React until `stop`; then let running reactions finish for a moment, store where
        to resume, and leave the group."""
        settings = self.settings
        consumer = group_consumer(
            self.options,
            settings.COLONY_GROUP_ID,
            settings.KAFKA_SESSION_TIMEOUT_MS,
            200,
            settings.KAFKA_FETCH_WAIT_MS,
        )
        self.loop = PartitionLoop("colony", self.topics.events, consumer, self)
        await self.producer.start()
        try:
            await self.loop.run(stop)
        finally:
            await self.producer.stop()

    async def prepare(self, tp: TopicPartition) -> int:
        """Fold the missions still open at the partition's stored offset (read from the
        fold mark stored with it); react from there."""
        start = await self.resume_offset(tp)
        await self.fold_history(tp, await self.fold_mark(tp, start), start)
        self.in_flight.fetched(tp.partition, start - 1)
        await self.start_waiting()
        return start

    async def handle(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        for tp, records in batches.items():
            for record in records:
                await self.accept(tp.partition, record)
        self.throttle()

    def throttle(self) -> None:
        """Hold fetching while too many reactions are unfinished (an outage, or a burst of
        events after one), and resume as soon as they are fewer: checked after each batch
        and each finished reaction (a paused consumer fetches no batch, so the check after
        a batch alone never resumed it: a burst stalled the colony for good). The consumer
        keeps polling either way, so it stays in its group."""
        if self.loop is not None:
            self.loop.hold(self.in_flight.count >= self.max_in_flight)

    @property
    def throttled(self) -> bool:
        return self.loop is not None and self.loop.held

    async def resume_offset(self, tp: TopicPartition) -> int:
        """The stored offset; else what an older colony committed to the broker; else 0."""
        stored = await self.pool.fetchval(STORED_OFFSET, self.offsets_name, tp.topic, tp.partition)
        if stored is not None:
            return int(stored)
        committed = await self.consumer.committed(tp)
        return int(committed or 0)

    async def fold_mark(self, tp: TopicPartition, start: int) -> int:
        """Where to begin folding: the mark stored with `start`, else the beginning."""
        mark = await self.pool.fetchval(STORED_MARK, self.offsets_name, tp.topic, tp.partition)
        return int(mark) if mark is not None and mark <= start else 0

    async def accept(self, partition: int, record: ConsumerRecord) -> None:
        """Fold one event and start its reaction (never waiting for it), in the trace
        context the event carries."""
        self.in_flight.fetched(partition, record.offset)
        try:
            event = self.wire.decode_event(record.value or b"")
        except InvalidRecordError as invalid:
            reason, detail = invalid.reason, invalid.detail
            await persist(lambda: self.dead_letters.publish(record, reason, detail))
            return
        parent = event_context(record.headers, event.meta.trace_id)
        with trace.use_span(trace.get_current_span(parent)):
            await self.follow(partition, record.offset, event, parent)

    async def follow(
        self, partition: int, offset: int, event: RecordedEvent, parent: Context
    ) -> None:
        before = self.files.get(event.meta.mission_id)
        since, stage = (before.state.status_since, before.state.stage) if before else (None, "")
        was_over = before is not None and before.state.terminal
        file = self.fold(event)
        if file is None:
            return
        self.track(partition, offset, event, file)
        if file.state.terminal and not was_over:
            log_end(file, event)
        if file.state.status != "requested":
            self.starting.discard(file.mission_id)  # started (or ended) one way or another
        queued = self.admit(file) if isinstance(event.body, MissionRequested) else None
        reaction = queued or react(
            file, event.body, self.context(file), self.settings.MAX_WORKERS_PER_MISSION
        )
        await self.observe(file, event, since, stage, parent)
        await self.start_waiting()  # any event may free a slot: a mission ending, or queued
        if reaction is not None:
            self.in_flight.started(partition, offset)
            work = self.until_done(file, event.meta, reaction, parent)
            self.spawn(partition, self._react(partition, offset, file, work))
        self.settle(file)

    def track(self, partition: int, offset: int, event: RecordedEvent, file: MissionFile) -> None:
        """Note where a mission folded `event` lives, and for the fold marks the offset it
        began at and the one it ended at. (Only folded events: the late ones of an ended
        mission must leave nothing behind.)"""
        self.home[file.mission_id] = partition
        if event.meta.sequence == 1:
            self.marks.opened(partition, file.mission_id, offset)
        if file.state.terminal:
            self.marks.ended(partition, file.mission_id, offset)

    def settle(self, file: MissionFile) -> None:
        """Drop the file of a mission that ended: memory holds only missions being worked
        (a reaction still running keeps its own reference and sees the mission ended)."""
        if file.state.terminal:
            self.files.pop(file.mission_id, None)
            self.home.pop(file.mission_id, None)
            self.starting.discard(file.mission_id)
            self.slots.forget(file.mission_id)
            self.ended[file.mission_id] = True

    def spawn(self, partition: int, work: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self.tasks[partition].add(task)
        task.add_done_callback(self.tasks[partition].discard)

    async def _react(
        self, partition: int, offset: int, file: MissionFile, work: Awaitable[None]
    ) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise  # the partition moved: its new owner re-runs this reaction
        except Exception:  # until_done handles failures; a bug must not stop the colony
            logger.bind(mission_id=file.mission_id).exception("reaction crashed")
        self.in_flight.finished(partition, offset)
        if self.throttled:
            self.throttle()

    async def until_done(
        self,
        file: MissionFile,
        meta: EventMeta,
        reaction: Reaction,
        parent: Context | None = None,
    ) -> None:
        """Perform `reaction` in a span under the event's (`parent`, else the mission's
        trace), retrying with backoff: outages until the mission's deadline, other failures
        REACTION_ATTEMPTS times; then fail the mission with the reason."""
        name = f"{type(reaction).__name__} after {meta.event_type}"
        context = parent if parent is not None else event_context(None, meta.trace_id)
        with work_span(name, context, {"velocity.mission_id": file.mission_id}):
            await self._retried(file, meta, reaction)

    async def _retried(self, file: MissionFile, meta: EventMeta, reaction: Reaction) -> None:
        log = logger.bind(mission_id=file.mission_id)
        deadline = file.deadline(self.settings.MISSION_TIMEOUT_MS)
        attempt = 0
        while True:
            try:
                await self.worker.perform(file, meta, reaction, self.context(file))
                return
            except Exception as error:
                if file.state.terminal:
                    return  # the mission ended meanwhile; nothing left to do
                attempt += 1
                outage = is_outage(error)
                late = deadline is not None and datetime.now(UTC) >= deadline
                if late or (not outage and attempt >= REACTION_ATTEMPTS):
                    await self.give_up(file, meta, reaction, error, late)
                    return
                log.warning(
                    "reaction {} to {} failed ({}{}); retry #{}",
                    type(reaction).__name__,
                    meta.event_type,
                    "outage: " if outage else "",
                    summary(error),
                    attempt,
                )
                await asyncio.sleep(backoff_s(attempt))

    async def give_up(
        self,
        file: MissionFile,
        meta: EventMeta,
        reaction: Reaction,
        error: Exception,
        late: bool,
    ) -> None:
        """Fail the mission legibly: which reaction, why, and that the colony gave up."""
        why = "past the mission's time budget" if late else f"after {REACTION_ATTEMPTS} attempts"
        reason = f"{type(reaction).__name__} to {meta.event_type} kept failing {why}: "
        body = FailMission(reason=cleaned(reason + summary(error))[0][:900])
        logger.bind(mission_id=file.mission_id).error("giving up: {}", body.reason)
        await persist(lambda: self.worker.send(meta, "fail/reaction", body))

    def fold(self, event: RecordedEvent) -> MissionFile | None:
        """Fold `event` into its mission's file; None (and nothing folded or reacted to)
        when it is not the next link of the mission's history."""
        if event.meta.mission_id in self.ended or is_release_stream(event.meta.mission_id):
            return None  # release streams (gate runs, rollouts) are not the colony's work
        if event.meta.sequence > 1 and event.meta.mission_id not in self.files:
            logger.bind(mission_id=event.meta.mission_id).debug(
                "{} of a mission that ended before those remembered: ignored",
                event.event_type,
            )
            return None
        file = self.files.get(event.meta.mission_id)
        if file is None:  # built only when new: a file's empty state costs its validation
            file = self.files[event.meta.mission_id] = MissionFile.new(event.meta.mission_id)
        why = why_not_next((file.state.sequence, file.state.last_hash), event)
        if why is not None:
            logger.bind(mission_id=file.mission_id).warning("not history, ignored: {}", why)
            if file.state.sequence == 0:
                del self.files[file.mission_id]
            return None
        file.record(event)
        self.slots.update(file)
        return file

    def context(self, file: MissionFile) -> PolicyContext | None:
        if file.request is None:
            return None
        return policy_context(
            file,
            self.settings.VELOCITY_ENV,
            self.settings.AUTONOMOUS_RESEARCH,
            production_writebacks_open(self.rollout_step),
            self.settings.research_mcp_tool,
        )

    async def watch_rollout(self, every_s: float) -> None:
        """Keep this environment's ledger rollout step at hand for the policy guard."""
        while True:
            try:
                row = await self.pool.fetchrow(ROLLOUT_STEP, self.settings.VELOCITY_ENV)
                self.rollout_step = int(row["step"]) if row else 1
            except Exception as error:
                logger.warning("rollout step not read: {}", summary(error))
            await asyncio.sleep(every_s)

    def admit(self, file: MissionFile) -> Reaction | None:
        """Queue a new mission when every slot is taken; None lets `react` start it."""
        limit = self.settings.MAX_CONCURRENT_MISSIONS
        if self.slots.taken(self.starting, besides=file.mission_id) < limit:
            return None
        position = len(self.slots.waiting) - (file.mission_id in self.slots.waiting) + 1
        return Send([("queue", QueueMission(position=position, limit=limit))])

    def admission(self) -> dict[str, int]:
        """Slots in use, missions waiting for one, and the limit (for the root's console)."""
        return {
            "running": self.slots.taken(self.starting),
            "queued": len(self.slots.waiting),
            "max": self.settings.MAX_CONCURRENT_MISSIONS,
        }

    async def start_waiting(self) -> None:
        """Start waiting missions while slots are free (oldest first). Cheap when none is
        free or none waits (the book, colony_consumers/admission.py), so it follows every
        event: looking only when a working mission stopped missed the slot a mission frees
        by being queued, which a mission requested just before counts until then."""
        limit = self.settings.MAX_CONCURRENT_MISSIONS
        free = limit - self.slots.taken(self.starting)
        for mission_id in self.slots.oldest(free, self.starting):
            waiting = self.files[mission_id]
            assert waiting.last is not None
            context = self.context(waiting)
            assert context is not None, "a waiting mission's request is known"
            self.starting.add(waiting.mission_id)
            start = first_moves(waiting, context, self.settings.MAX_WORKERS_PER_MISSION)
            partition = self.home.get(waiting.mission_id, -1)
            self.spawn(partition, self.until_done(waiting, waiting.last, start))

    async def execute_stalled(self, stalled: list[tuple[str, str]]) -> None:
        """Execute approved writebacks of our missions that have no result (the sweeper's
        safety net); each at most once at a time, with the approval's own reaction id."""
        for mission_id, writeback_id in stalled:
            file = self.files.get(mission_id)
            approval = file.approved.get(writeback_id) if file else None
            if file is None or approval is None or writeback_id in self.redoing:
                continue
            self.redoing.add(writeback_id)
            logger.bind(mission_id=mission_id).warning("re-executing writeback {}", writeback_id)
            work = self.until_done(file, approval, ApplyWriteback(writeback_id))
            self.spawn(self.home[mission_id], self._redone(writeback_id, work))

    async def _redone(self, writeback_id: str, work: Awaitable[None]) -> None:
        try:
            await work
        finally:
            self.redoing.discard(writeback_id)

    async def observe(
        self,
        file: MissionFile,
        event: RecordedEvent,
        since: datetime | None,
        stage: str,
        parent: Context,
    ) -> None:
        """Emit the event's measurements (fire and forget: a metric is never worth a wait);
        the timed ones (a stage, an approval wait) also as spans of the mission's trace."""
        meta = event.meta
        for index, (name, value, tags) in enumerate(measurements(file, event, since, stage)):
            if name in TIMED_SPANS:
                started = meta.occurred_at - timedelta(milliseconds=value)
                span = TIMED_SPANS[name].format(**tags)
                record_interval(span, parent, started, meta.occurred_at, **tags)
            try:
                await self.metrics.emit(
                    name, value, tags, f"{meta.event_id}/{index}", meta.mission_id, meta.trace_id
                )
            except OUTAGES as error:
                logger.warning("metric {} not sent: {}", name, summary(error))

    async def flush(self, partitions: set[int] | None) -> None:
        """Store where each owned partition (or each of `partitions`) resumes."""
        owned = self.partitions if partitions is None else partitions
        positions = {
            (self.offsets_name, partition): offset
            for partition, offset in self.in_flight.resume_at().items()
            if partition in owned
        }
        if not positions:
            return
        marks = [
            (self.offsets_name, self.topics.events, partition, self.marks.fold_from(partition, at))
            for (_, partition), at in positions.items()
        ]
        try:
            async with self.pool.acquire() as connection, connection.transaction():
                await save_offsets(connection, self.topics.events, positions)
                await connection.executemany(SAVE_MARK, marks)
        except OUTAGES as error:
            logger.warning("colony offsets not stored yet: {}", summary(error))

    async def drain(self) -> None:
        """On stop: give running reactions DRAIN_S to finish, then cancel the rest (they
        re-run after the restart; the stored offsets stay behind them)."""
        running = [task for tasks in self.tasks.values() for task in tasks]
        if running:
            logger.info("colony stopping: {} reactions running", len(running))
            await asyncio.wait(running, timeout=DRAIN_S)
        for task in running:
            task.cancel()

    def release(self, partitions: set[int]) -> None:
        """Stop revoked partitions' reactions and forget their missions."""
        for partition in partitions:
            for task in self.tasks.pop(partition, set()):
                task.cancel()
        missions = {m for m, p in self.home.items() if p in partitions}
        for mission_id in missions:
            self.files.pop(mission_id, None)
            self.home.pop(mission_id, None)
            self.slots.forget(mission_id)
        self.starting -= missions
        self.in_flight.forget(partitions)
        self.marks.forget(partitions)

    async def fold_history(self, tp: TopicPartition, start: int, end: int) -> None:
        """Fold the events from `start` (the fold mark) to `end` (the stored offset) of the
        partition's missions still open there, without reacting
        (colony_consumers/open_histories.py, fold_marks.py)."""
        if start >= end:
            logger.info(
                "partition {}: nothing to fold, reacting from offset {:,}", tp.partition, end
            )
            return
        history = OpenHistories(self.wire.event_position)
        reader = AIOKafkaConsumer(
            enable_auto_commit=False,
            fetch_max_wait_ms=25,
            max_partition_fetch_bytes=HISTORY_FETCH_BYTES,
            **self.options,
        )
        await reader.start()
        try:
            reader.assign([tp])
            if start > 0:
                reader.seek(tp, start)
            else:
                await reader.seek_to_beginning(tp)
            while await reader.position(tp) < end:
                batch = await reader.getmany(tp, timeout_ms=200)
                for record in batch.get(tp, []):
                    if record.offset < end:
                        history.add(record)
        finally:
            await reader.stop()
        folded = self.fold_open(history, tp.partition)
        logger.info(
            "partition {}: {} missions open, folded from offset {:,} to {:,}",
            tp.partition,
            folded,
            start,
            end,
        )

    def fold_open(self, history: OpenHistories, partition: int) -> int:
        """Remember the missions that ended; fold those still open; how many are."""
        for mission_id in history.ended()[-ENDED_KEPT:]:
            self.ended[mission_id] = True
        still_open: set[str] = set()
        for offset, value in history.records():
            event = self._decode(value)
            if event is not None:
                folded = self.fold(event)
                if folded is not None:
                    self.track(partition, offset, event, folded)
                    self.settle(folded)
                    still_open.add(folded.mission_id)
        return sum(1 for mission_id in still_open if mission_id in self.files)

    def _decode(self, value: bytes) -> RecordedEvent | None:
        """The event, or None for a record that is none (dead-lettered when first seen)."""
        try:
            return self.wire.decode_event(value)
        except InvalidRecordError:
            return None


def log_end(file: MissionFile, event: RecordedEvent) -> None:
    """One line per mission that ends, for whoever follows the colony's log."""
    took = (event.meta.occurred_at - (file.requested_at or event.meta.occurred_at)).total_seconds()
    kind = file.request.mission_type if file.request else "unknown"
    logger.bind(mission_id=file.mission_id).info(
        "{} mission {} after {:.1f} s", kind, file.state.status, took
    )


def summary(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:300]


async def persist(send: Callable[[], Awaitable[None]]) -> None:
    """Run `send` until it succeeds: it records something that must not be lost (a dead
    letter, a mission's failure), and an outage ends."""
    attempt = 0
    while True:
        try:
            await send()
            return
        except Exception as error:
            attempt += 1
            logger.warning("retrying after {} (#{})", summary(error), attempt)
            await asyncio.sleep(backoff_s(attempt))
