"""Doing a reaction: run a task, review, propose or execute a writeback, and send the
commands that follow, each with an id derived from the event it answers.

A reaction either completes or raises. It is safe to run again: command ids are derived
from the event and step (the ledger applies each once), artifacts are content-addressed,
and the CRM applies a writeback id once. Outages of our own infrastructure raise (the
colony retries the reaction); a task's own failure becomes a FailTask command.
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from aiokafka import AIOKafkaProducer

from colony_consumers.crm_writeback import apply_writeback, qualify
from colony_consumers.mission_file import MissionFile
from colony_consumers.outages import OUTAGES, OutageError
from colony_consumers.policy import PolicyContext, evaluate_writeback
from colony_consumers.reactions import (
    ApplyWriteback,
    ProposeWritebacks,
    Reaction,
    Review,
    RunTask,
    Send,
    reaction_id,
    step_id,
    tool_decision,
)
from colony_consumers.reviewer import Source, check_lines, review
from colony_consumers.root_client import Artifact, RootClient
from colony_consumers.task_runner import TaskRunner
from infra.topics import TopicNames
from infra.tracing import current_trace_id, mission_span
from ledger.commands import (
    Command,
    CommandBody,
    CompleteMission,
    FailTask,
    ProposeWriteback,
    RecordReview,
    RecordWritebackResult,
)
from ledger.events import EventMeta
from ledger.wire import LedgerWire
from projections.queries import mission_trace


class Worker:
    """Performs reactions for the colony and sends their commands."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        root: RootClient,
        runner: TaskRunner,
        producer: AIOKafkaProducer,
        topics: TopicNames,
        task_timeout_ms: int,
    ) -> None:
        self.pool = pool
        self.root = root
        self.runner = runner
        self.producer = producer
        self.topics = topics
        self.task_timeout_ms = task_timeout_ms
        self.wire = LedgerWire()

    async def perform(
        self, file: MissionFile, meta: EventMeta, reaction: Reaction, context: PolicyContext | None
    ) -> None:
        if isinstance(reaction, Send):
            await self.send_all(meta, reaction.commands, file.sent)
        elif isinstance(reaction, RunTask):
            await self.send(meta, f"result/{reaction.task_id}", await self.run_task(file, reaction))
        elif isinstance(reaction, Review):
            await self.send(meta, "review", await self.review(file))
        elif isinstance(reaction, ProposeWritebacks):
            assert context is not None
            await self.propose(file, meta, context)
        elif isinstance(reaction, ApplyWriteback):
            await self.send(meta, "writeback", await self.execute(file, reaction.writeback_id))

    async def run_task(self, file: MissionFile, task: RunTask) -> CommandBody:
        """The task's outcome; past TASK_TIMEOUT_MS a retryable failure, never a hang."""
        try:
            return await asyncio.wait_for(
                self.runner.run(file, task.task_id, task.tool), self.task_timeout_ms / 1000
            )
        except TimeoutError:
            error = f"{task.tool} gave no result within {self.task_timeout_ms} ms"
            return FailTask(task_id=task.task_id, error=error, retryable=True)

    async def review(self, file: MissionFile) -> RecordReview:
        sources = [
            Source(number=i, title=s.artifact_id, source=s.source, content_hash=s.content_hash)
            for i, s in enumerate(file.sources, 1)
        ]
        draft = next((v for k, v in file.outputs.items() if k.startswith("draft_")), "")
        packet = review(draft, sources, file.denials, file.failures)
        packet_hash = await self.root.store(
            Artifact(
                packet.model_dump_json(indent=2),
                mission_id=file.mission_id,
                artifact_id="reviewer-packet",
                kind="reviewer_packet",
                source="colony:reviewer",
                media_type="application/json",
            )
        )
        return RecordReview(
            packet_hash=packet_hash,
            verdict=packet.verdict,
            output=draft,
            checks=check_lines(packet),
        )

    async def propose(self, file: MissionFile, meta: EventMeta, context: PolicyContext) -> None:
        assert file.request is not None
        decision = evaluate_writeback(context)
        await self.send(
            meta, "policy/writeback", tool_decision("writeback", "crm_writeback", decision)
        )
        account = await self._account(file.request.lead_company or "")
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

    async def _account(self, company: str) -> asyncpg.Record | None:
        try:
            row: asyncpg.Record | None = await self.pool.fetchrow(
                "SELECT account_id, employees, notes FROM crm_accounts"
                " WHERE lower(company) = lower($1)",
                company,
            )
        except OUTAGES as error:
            raise OutageError(f"PostgreSQL unavailable ({type(error).__name__})") from error
        return row

    async def execute(self, file: MissionFile, writeback_id: str) -> RecordWritebackResult:
        """Apply an approved writeback once; the CRM refusing it is a failed result, the
        CRM being unreachable an outage (retried, never recorded as failed)."""
        proposed = file.writebacks[writeback_id]
        try:
            detail = await apply_writeback(
                self.pool, writeback_id, proposed.record_ref, proposed.changes
            )
        except OUTAGES:
            raise
        except (asyncpg.PostgresError, ValueError) as error:
            return RecordWritebackResult(
                writeback_id=writeback_id, succeeded=False, detail=str(error)
            )
        return RecordWritebackResult(writeback_id=writeback_id, succeeded=True, detail=detail)

    async def send(self, cause: EventMeta, step: str, body: CommandBody) -> None:
        """Send `body` as the reaction `step` to the event `cause` (its id derived from both)."""
        await self.send_all(cause, [(step, body)])

    async def send_all(
        self,
        cause: EventMeta,
        steps: list[tuple[str, CommandBody]],
        sent: set[str] | None = None,
    ) -> None:
        """Send a reaction's commands in order, acknowledged together (one round trip),
        but none whose id is in `sent` (the mission's, acknowledged already); add theirs.
        Skipped ones are never built: a step prompted again (see reactions.py) is the
        common case, and a command costs its validation."""
        mission_id = cause.mission_id
        ids = [(step_id(mission_id, cause.event_id, step), step, body) for step, body in steps]
        fresh = [
            colony_command(
                mission_id,
                command_id,
                body,
                step.split("/")[0],
                cause.correlation_id,
                cause.trace_id,
            )
            for command_id, step, body in ids
            if sent is None or command_id not in sent
        ]
        await self.produce(fresh)
        if sent is not None:
            sent.update(c.meta.command_id for c in fresh)

    async def sweep_send(self, mission_id: str, step: str, body: CommandBody) -> None:
        """The sweeper's commands: ids derived from what was stuck since when; sent in the
        mission's trace."""
        command_id = reaction_id(mission_id, step)
        with mission_span(
            f"sweeper {step.split('/')[0]}", await mission_trace(self.pool, mission_id)
        ):
            trace_id = current_trace_id() or uuid.uuid4().hex
            await self.produce(
                [colony_command(mission_id, command_id, body, "sweeper", mission_id, trace_id)]
            )

    async def produce(self, commands: list[Command]) -> None:
        """Append `commands` to their mission's partition in this order; return once the
        broker acknowledged them all (they share the producer's batch for that partition)."""
        deliveries = []
        for command in commands:
            record = self.wire.encode_command(command)
            deliveries.append(
                await self.producer.send(
                    self.topics.commands,
                    record.value,
                    record.key,
                    record.partition,
                    headers=record.headers,
                )
            )
        await asyncio.gather(*deliveries)


def colony_command(
    mission_id: str,
    command_id: str,
    body: CommandBody,
    role: str,
    correlation_id: str,
    trace_id: str,
) -> Command:
    return Command.issue(
        mission_id,
        body,
        command_id=command_id,
        actor=f"colony:{role}",
        trace_id=trace_id,
        correlation_id=correlation_id,
    )
