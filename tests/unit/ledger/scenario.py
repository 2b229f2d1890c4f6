"""Given/when/then for the pure mission state machine: a mission driven command by command."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from ledger.commands import (
    BeginReview,
    Command,
    CommandBody,
    CompleteTask,
    PlannedTask,
    ProposeWriteback,
    RecordPlan,
    RecordReview,
    StartPlanning,
    StartTask,
    Verdict,
)
from ledger.events import EventBody, RecordedEvent
from ledger.state import MissionState
from ledger.step import step
from tests.factories import AUTHORITY, OPERATOR, command, request_body

__all__ = ["OPERATOR", "PACKET", "Mission"]
PACKET = "a" * 64


class Mission:
    """One mission's state and log, advanced through `ledger.step` like the decider does."""

    def __init__(self, **request: Any) -> None:
        self.id = str(uuid.uuid4())
        self.state = MissionState(mission_id=self.id)
        self.log: list[RecordedEvent] = []
        self.clock = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
        self.request_fields = request

    def do(
        self, body: CommandBody, actor: str = "colony:test", command_id: str | None = None
    ) -> list[EventBody]:
        """Apply one command; return the bodies of the events it appended. An operator's
        command carries the local root's signature, as the root would sign it."""
        self.clock += timedelta(seconds=1)
        return self.apply(
            command(self.id, body, command_id=command_id, actor=actor, issued_at=self.clock)
        )

    def apply(self, cmd: Command) -> list[EventBody]:
        """Apply a command built by the test itself (e.g. a forged one)."""
        self.state, events = step(self.state, cmd, self.clock, AUTHORITY)
        self.log.extend(events)
        return [e.body for e in events]

    def types(self, bodies: list[EventBody]) -> list[str]:
        return [type(b).__name__ for b in bodies]

    def requested(self) -> Mission:
        self.do(request_body(**self.request_fields))
        return self

    def running(self, tasks: int = 2) -> Mission:
        self.requested()
        self.do(StartPlanning(planner="planner"))
        plan = [
            PlannedTask(task_id=f"t{i}", kind="research", description="d") for i in range(tasks)
        ]
        self.do(RecordPlan(tasks=plan, rationale="because"))
        return self

    def in_review(self, verdict: Verdict = "pass") -> Mission:
        self.running()
        for task_id in list(self.state.tasks):
            self.do(StartTask(task_id=task_id, worker="w1"))
            self.do(CompleteTask(task_id=task_id, summary="ok", tokens_used=10, duration_ms=5))
        self.do(BeginReview(reviewer="reviewer"))
        self.do(RecordReview(packet_hash=PACKET, verdict=verdict, output="answer"))
        return self

    def awaiting_approval(self, writeback_id: str = "w1") -> Mission:
        self.in_review()
        self.do(
            ProposeWriteback(
                writeback_id=writeback_id,
                target="crm",
                record_ref="account:northwind",
                changes={"qualification_score": "82"},
                rationale="strong fit",
            )
        )
        return self
