"""A reaction that fails is retried, never dropped: outages are waited out until the
mission's deadline, other failures a few times; then the mission is failed with the reason.
Driven with a stand-in worker (the colony's own collaborator, not Kafka or PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from colony_consumers import colony as colony_module
from colony_consumers.colony import REACTION_ATTEMPTS, Colony
from colony_consumers.mission_file import MissionFile
from colony_consumers.outages import OutageError
from colony_consumers.reactions import Review
from colony_consumers.settings import ColonySettings
from ledger.commands import CommandBody, FailMission
from ledger.events import EventMeta
from ledger.step import step
from tests.factories import AUTHORITY, command, request_body


class Worker:
    """Fails the first `failures` performs with `error`, then succeeds; records sends."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.performed = 0
        self.sent: list[CommandBody] = []

    async def perform(self, *args: Any) -> None:
        self.performed += 1
        if self.performed <= self.failures:
            raise self.error

    async def send(self, cause: EventMeta, step_name: str, body: CommandBody) -> None:
        self.sent.append(body)


def mission(budget_ms: int = 60_000, requested_at: datetime | None = None) -> MissionFile:
    file = MissionFile.new("m-1")
    at = requested_at or datetime.now(UTC)
    _, events = step(
        file.state, command("m-1", request_body(time_budget_ms=budget_ms)), at, AUTHORITY
    )
    for event in events:
        file.record(event)
    return file


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(colony_module, "backoff_s", lambda attempt: 0.0)


def colony_with(worker: Worker) -> Colony:
    return Colony(ColonySettings(), {"bootstrap_servers": "127.0.0.1:1"}, None, worker, None, None)  # type: ignore[arg-type]


async def test_an_outage_is_waited_out_and_the_reaction_completes() -> None:
    worker = Worker(failures=20, error=OutageError("root answered 503"))
    file = mission()
    assert file.last is not None
    await colony_with(worker).until_done(file, file.last, Review())
    assert worker.performed == 21, "an outage spends no attempt: retried until it passed"
    assert worker.sent == []


async def test_a_reaction_that_keeps_failing_fails_its_mission_with_the_reason() -> None:
    worker = Worker(failures=100, error=ValueError("reviewer crashed"))
    file = mission()
    assert file.last is not None
    await colony_with(worker).until_done(file, file.last, Review())
    assert worker.performed == REACTION_ATTEMPTS
    assert len(worker.sent) == 1 and isinstance(worker.sent[0], FailMission)
    assert "Review to MissionRequested kept failing after 5 attempts" in worker.sent[0].reason
    assert "reviewer crashed" in worker.sent[0].reason


async def test_an_outage_past_the_time_budget_fails_the_mission() -> None:
    worker = Worker(failures=100, error=OutageError("PostgreSQL unavailable"))
    file = mission(budget_ms=1_000, requested_at=datetime.now(UTC) - timedelta(seconds=5))
    assert file.last is not None
    await colony_with(worker).until_done(file, file.last, Review())
    assert worker.performed == 1
    assert isinstance(worker.sent[0], FailMission)
    assert "past the mission's time budget" in worker.sent[0].reason
