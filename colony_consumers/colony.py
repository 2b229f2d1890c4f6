"""The colony's reactor process: reads `mission.events`, does the work, sends commands.

It never writes events. It consumes in a consumer group (run more copies to share
partitions), keeps each mission's file folded from its events (rebuilt from the log up
to the committed offset after a restart or rebalance), reacts to each new event, and
commits an offset only after the reactions to it have been sent. A crash re-runs the
reactions since the last commit; their command ids are derived from the events, so the
ledger applies each step once, and the CRM guards its writebacks by writeback id.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.structs import OffsetAndMetadata
from loguru import logger

from colony_consumers.admission import WORKING, is_waiting, next_waiting, working_count
from colony_consumers.crm_writeback import apply_writeback, qualify
from colony_consumers.metric_emitter import MetricEmitter
from colony_consumers.mission_file import MissionFile
from colony_consumers.policy import PolicyContext, evaluate_writeback
from colony_consumers.reactions import (
    ApplyWriteback,
    ProposeWritebacks,
    Reaction,
    Review,
    RunTask,
    Send,
    policy_context,
    react,
    reaction_id,
    tool_decision,
)
from colony_consumers.reviewer import Source, check_lines, review
from colony_consumers.root_client import RootClient
from colony_consumers.settings import ColonySettings
from colony_consumers.task_runner import TaskRunner
from infra.topics import TopicNames
from ledger.commands import (
    Command,
    CommandBody,
    CompleteMission,
    FailTask,
    ProposeWriteback,
    QueueMission,
    RecordReview,
    RecordWritebackResult,
    StartPlanning,
)
from ledger.dead_letters import DeadLetters
from ledger.events import EventMeta, MissionRequested, PlanningStarted, RecordedEvent
from ledger.metrics import MetricName
from ledger.state import TERMINAL_STATUSES, status_change
from ledger.wire import InvalidRecordError, LedgerWire


class Colony(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(
        self,
        settings: ColonySettings,
        options: dict[str, Any],
        pool: asyncpg.Pool,
        root: RootClient,
        runner: TaskRunner,
        producer: AIOKafkaProducer,
        metrics: MetricEmitter,
    ) -> None:
        self.settings = settings
        self.options = options
        self.topics = TopicNames(settings.KAFKA_TOPIC_PREFIX)
        self.pool = pool
        self.root = root
        self.runner = runner
        self.wire = LedgerWire()
        self.metrics = metrics
        self.files: dict[str, MissionFile] = {}
        self.partitions: set[int] = set()
        self.unfolded: set[int] = set()
        self.starting: set[str] = set()
        self.slots = asyncio.Semaphore(settings.MAX_CONCURRENT_MISSIONS)
        self.producer = producer
        self.dead_letters = DeadLetters(
            producer, self.topics.dead_letters, self.wire.codec, "colony"
        )
        self.consumer = AIOKafkaConsumer(
            group_id=settings.COLONY_GROUP_ID,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=settings.KAFKA_SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=max(settings.KAFKA_SESSION_TIMEOUT_MS // 5, 300),
            fetch_max_wait_ms=25,
            max_poll_records=200,
            **options,
        )

    async def run(self, stop: asyncio.Event) -> None:
        await self.producer.start()
        try:
            await self.consumer.start()
            try:
                self.consumer.subscribe([self.topics.events], listener=self)
                while not stop.is_set():
                    batch = await self.consumer.getmany(timeout_ms=200)
                    if batch:
                        await self.handle(batch)
            finally:
                await self.consumer.stop()
        finally:
            await self.producer.stop()

    async def handle(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        """Fold every event, run the reactions (missions in parallel), then commit."""
        for tp, records in batch.items():
            if tp.partition in self.unfolded:
                await self.fold_history(tp, records[0].offset)
                self.unfolded.discard(tp.partition)
                await self.release()  # missions that waited while no one owned them
        work = []
        for records in batch.values():
            for record in records:
                try:
                    event = self.wire.decode_event(record.value or b"")
                except InvalidRecordError as error:
                    await self.dead_letters.publish(record, error.reason, error.detail)
                    continue
                work.append(self._react_to(event))
        await asyncio.gather(*work)
        await self.consumer.commit(
            {tp: OffsetAndMetadata(records[-1].offset + 1, "") for tp, records in batch.items()}
        )

    def _decode(self, record: ConsumerRecord) -> RecordedEvent | None:
        """The event, or None for a record that is none (dead-lettered when first seen)."""
        try:
            return self.wire.decode_event(record.value or b"")
        except InvalidRecordError:
            return None

    def fold(self, event: RecordedEvent) -> MissionFile:
        file = self.files.setdefault(event.meta.mission_id, MissionFile.new(event.meta.mission_id))
        if event.meta.sequence > file.state.sequence:
            file.record(event)
        return file

    def context(self, file: MissionFile) -> PolicyContext | None:
        if file.request is None:
            return None
        return policy_context(
            file,
            self.settings.VELOCITY_ENV,
            self.settings.AUTONOMOUS_RESEARCH,
            self.settings.WRITEBACK_APPROVAL_GATE_PASSED,
        )

    def admit(self, file: MissionFile, event: RecordedEvent) -> Reaction | None:
        """Queue a new mission when every slot is taken; None lets `react` start it."""
        limit = self.settings.MAX_CONCURRENT_MISSIONS
        others = [f for f in self.files.values() if f.mission_id != file.mission_id]
        if working_count(others, self.starting) < limit:
            return None
        position = sum(1 for f in others if is_waiting(f)) + 1
        return Send([("queue", QueueMission(position=position, limit=limit))])

    async def release(self) -> None:
        """Start waiting missions while slots are free (oldest first)."""
        limit = self.settings.MAX_CONCURRENT_MISSIONS
        free = limit - working_count(self.files.values(), self.starting)
        for waiting in next_waiting(self.files.values(), self.starting, free):
            assert waiting.last is not None
            self.starting.add(waiting.mission_id)
            await self.send(waiting.last, "plan/start", StartPlanning(planner="colony:planner"))

    async def _react_to(self, event: RecordedEvent) -> None:
        before = self.files.get(event.meta.mission_id)
        since, stage = (before.state.status_since, before.state.stage) if before else (None, "")
        was_working = before is not None and before.state.status in WORKING
        file = self.fold(event)
        if isinstance(event.body, PlanningStarted):
            self.starting.discard(file.mission_id)
        queued = self.admit(file, event) if isinstance(event.body, MissionRequested) else None
        freed = was_working and file.state.status not in WORKING
        # decided before the first await: a concurrent reaction must not fold events
        # this one has not seen yet
        workers = self.settings.MAX_WORKERS_PER_MISSION
        reaction = queued or react(file, event.body, self.context(file), workers)
        await self.observe(file, event, since, stage)
        if freed:
            await self.release()
        if reaction is None:
            return
        log = logger.bind(mission_id=file.mission_id, trace_id=event.meta.trace_id)
        async with self.slots:
            try:
                await self.perform(file, event.meta, reaction)
            except Exception as error:  # a reaction must never stop the colony
                log.exception("reaction to {} failed: {}", event.event_type, error)

    async def perform(self, file: MissionFile, meta: EventMeta, reaction: Reaction) -> None:
        if isinstance(reaction, Send):
            for step, body in reaction.commands:
                await self.send(meta, step, body)
        elif isinstance(reaction, RunTask):
            await self.send(meta, f"result/{reaction.task_id}", await self.run_task(file, reaction))
        elif isinstance(reaction, Review):
            await self.send(meta, "review", await self.review(file))
        elif isinstance(reaction, ProposeWritebacks):
            await self.propose(file, meta)
        elif isinstance(reaction, ApplyWriteback):
            await self.send(meta, "writeback", await self.execute(file, reaction.writeback_id))

    async def run_task(self, file: MissionFile, task: RunTask) -> CommandBody:
        """The task's outcome; past TASK_TIMEOUT_MS a retryable failure, never a hang."""
        limit_s = self.settings.TASK_TIMEOUT_MS / 1000
        try:
            return await asyncio.wait_for(self.runner.run(file, task.task_id, task.tool), limit_s)
        except TimeoutError:
            error = f"{task.tool} gave no result within {self.settings.TASK_TIMEOUT_MS} ms"
            return FailTask(task_id=task.task_id, error=error, retryable=True)

    async def review(self, file: MissionFile) -> RecordReview:
        sources = [
            Source(number=i, title=s.artifact_id, source=s.source, content_hash=s.content_hash)
            for i, s in enumerate(file.sources, 1)
        ]
        draft = next((v for k, v in file.outputs.items() if k.startswith("draft_")), "")
        packet = review(draft, sources, file.denials, file.failures)
        packet_hash = await self.root.store(
            packet.model_dump_json(indent=2),
            mission_id=file.mission_id,
            artifact_id="reviewer-packet",
            kind="reviewer_packet",
            source="colony:reviewer",
            media_type="application/json",
        )
        return RecordReview(
            packet_hash=packet_hash,
            verdict=packet.verdict,
            output=draft,
            checks=check_lines(packet),
        )

    async def propose(self, file: MissionFile, meta: EventMeta) -> None:
        context = self.context(file)
        assert context is not None and file.request is not None
        decision = evaluate_writeback(context)
        await self.send(
            meta, "policy/writeback", tool_decision("writeback", "crm_writeback", decision)
        )
        account = await self.pool.fetchrow(
            "SELECT account_id, employees, notes FROM crm_accounts"
            " WHERE lower(company) = lower($1)",
            file.request.lead_company or "",
        )
        if not decision.allowed or account is None:
            await self.send(
                meta, "complete", CompleteMission(output=file.outputs.get("review", ""))
            )
            return
        proposal = ProposeWriteback(
            writeback_id=reaction_id(meta.event_id, "writeback"),
            target="crm",
            record_ref=account["account_id"],
            changes=qualify(account["employees"], account["notes"]),
            rationale=f"from the reviewed brief of mission {file.mission_id}",
        )
        await self.send(meta, "propose", proposal)

    async def execute(self, file: MissionFile, writeback_id: str) -> RecordWritebackResult:
        proposed = file.writebacks[writeback_id]
        try:
            detail = await apply_writeback(
                self.pool, writeback_id, proposed.record_ref, proposed.changes
            )
        except (asyncpg.PostgresError, OSError, ValueError) as error:
            return RecordWritebackResult(
                writeback_id=writeback_id, succeeded=False, detail=str(error)
            )
        return RecordWritebackResult(writeback_id=writeback_id, succeeded=True, detail=detail)

    async def send(self, cause: EventMeta, step: str, body: CommandBody) -> None:
        """Send `body` as the reaction `step` to the event `cause` (its id derived from both)."""
        await self.send_command(
            cause.mission_id,
            reaction_id(cause.event_id, step),
            body,
            step.split("/")[0],
            cause.correlation_id,
            cause.trace_id,
        )

    async def sweep_send(self, mission_id: str, step: str, body: CommandBody) -> None:
        """The sweeper's commands: ids derived from what was stuck since when."""
        command_id = reaction_id(mission_id, step)
        await self.send_command(
            mission_id, command_id, body, "sweeper", mission_id, uuid.uuid4().hex
        )

    async def send_command(
        self,
        mission_id: str,
        command_id: str,
        body: CommandBody,
        role: str,
        correlation_id: str,
        trace_id: str,
    ) -> None:
        command = Command.issue(
            mission_id,
            body,
            command_id=command_id,
            actor=f"colony:{role}",
            trace_id=trace_id,
            correlation_id=correlation_id,
        )
        record = self.wire.encode_command(command)
        await self.producer.send_and_wait(
            self.topics.commands, record.value, record.key, headers=record.headers
        )

    async def observe(
        self, file: MissionFile, event: RecordedEvent, since: datetime | None, stage: str
    ) -> None:
        """Metrics about the event: stage latency, policy decisions, waits, outcomes."""
        meta, body = event.meta, event.body
        labels: dict[str, str] = {
            "mission_type": file.request.mission_type if file.request else "unknown"
        }
        metrics: list[tuple[MetricName, float, dict[str, str]]] = []
        moved = status_change(body)
        if moved is not None and since is not None:
            spent = (meta.occurred_at - since).total_seconds() * 1000
            metrics.append(("stage_latency", spent, labels | {"stage": stage}))
            if moved[0] in TERMINAL_STATUSES:
                metrics.append(("mission_outcome", 1.0, labels | {"outcome": moved[0]}))
        if event.event_type in ("ToolRequestAllowed", "ToolRequestDenied"):
            decision = "allowed" if event.event_type == "ToolRequestAllowed" else "denied"
            rule = str(getattr(body, "rule_id", ""))
            metrics.append(
                ("policy_decision", 1.0, labels | {"decision": decision, "rule_id": rule})
            )
        writeback_id = str(getattr(body, "writeback_id", ""))
        if (
            event.event_type in ("WritebackApproved", "WritebackRejected")
            and writeback_id in file.asked_at
        ):
            wait = (meta.occurred_at - file.asked_at[writeback_id]).total_seconds() * 1000
            metrics.append(("approval_wait", wait, labels))
        for index, (name, value, tags) in enumerate(metrics):
            await self.metrics.emit(
                name, value, tags, f"{meta.event_id}/{index}", meta.mission_id, meta.trace_id
            )

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.partitions -= {tp.partition for tp in revoked}
        self.unfolded -= {tp.partition for tp in revoked}

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        """Newly owned partitions get their history folded before their first reaction."""
        self.partitions |= {tp.partition for tp in assigned}
        self.unfolded |= {tp.partition for tp in assigned}
        logger.info("colony owns partitions {}", sorted(self.partitions))

    async def fold_history(self, tp: TopicPartition, end: int) -> None:
        """Fold the partition's events before `end` (the committed offset) without reacting:
        the first record a new owner receives sits at the committed offset."""
        if end == 0:
            return
        reader = AIOKafkaConsumer(enable_auto_commit=False, fetch_max_wait_ms=25, **self.options)
        await reader.start()
        try:
            reader.assign([tp])
            await reader.seek_to_beginning(tp)
            while await reader.position(tp) < end:
                batch = await reader.getmany(tp, timeout_ms=200)
                for record in batch.get(tp, []):
                    event = self._decode(record) if record.offset < end else None
                    if event is not None:
                        self.fold(event)
        finally:
            await reader.stop()
