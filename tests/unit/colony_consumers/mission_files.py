"""Mission files for the colony's pure tests: folded from commands as the decider
decides them, so a reaction sees what it would see in the log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from colony_consumers.mission_file import MissionFile
from colony_consumers.planner import plan
from ledger.commands import CommandBody, RecordPlan, StartPlanning
from ledger.events import MissionPlanned
from ledger.step import step
from tests.factories import AUTHORITY, command, request_body


def folded(mission_type: str, *bodies: CommandBody, **request: Any) -> MissionFile:
    """A mission file after its request, plan and `bodies`, as the decider decides them."""
    file = MissionFile.new("m-1")
    opening = [
        request_body(mission_type=mission_type, **request),
        StartPlanning(planner="p"),
        RecordPlan(tasks=plan(mission_type), rationale="r"),
    ]
    for body in [*opening, *bodies]:
        _, events = step(file.state, command("m-1", body), datetime.now(UTC), AUTHORITY)
        for event in events:
            file.record(event)
    return file


def planned(mission_type: str) -> MissionPlanned:
    return MissionPlanned(tasks=plan(mission_type), rationale="r")
