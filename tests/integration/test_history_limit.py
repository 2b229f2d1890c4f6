"""A mission's history is bounded (ledger/history_limit.py), on the real broker: a writer
that keeps sending commands about one mission gets it failed at `MISSION_MAX_EVENTS`,
then a tenth more, then dead letters; other missions go on; MCP reads of the full mission
are counted, not sent to be set aside."""

from __future__ import annotations

import uuid
from typing import Any

from infra.topics import TopicNames
from ledger.commands import Command, RecordBudgetUse
from tests.conftest import Isolated
from tests.factories import command, request_body
from tests.integration.conftest import (
    archived,
    command_sender,
    dead_letters,
    eventually,
    ledger_services,
    prepared,
    root_api,
    root_server,
)
from tests.mcp_client import answer, mcp_session

LIMIT = 100
CAP = LIMIT + LIMIT // 10
BUDGETS = {"time_budget_ms": 10**9, "token_budget": 10**9}


def flood(mission_id: str, commands: int) -> list[Command]:
    """A mission's request, then budget records: `commands` commands in all."""
    spent = RecordBudgetUse(tokens=1, time_ms=1)
    return [command(mission_id, request_body(**BUDGETS))] + [
        command(mission_id, spent) for _ in range(commands - 1)
    ]


async def letters_about(slice_: Isolated, mission_id: str, count: int) -> list[dict[str, Any]]:
    letters = [
        letter
        for letter in await dead_letters(slice_)
        if letter["reason"] == "history_full" and mission_id in letter["detail"]
    ]
    return letters if len(letters) >= count else []


async def test_a_flooded_mission_fails_at_its_limit_and_then_its_commands_are_set_aside(
    isolated: Isolated,
) -> None:
    await prepared(isolated)
    mission_id, other = str(uuid.uuid4()), str(uuid.uuid4())
    commands = flood(mission_id, CAP + 9)
    async with (
        ledger_services(isolated, MISSION_MAX_EVENTS=LIMIT),
        command_sender(isolated) as sender,
    ):
        await sender.send(*commands)
        await eventually(lambda: letters_about(isolated, mission_id, 9), timeout_s=60)
        marker = command(mission_id, RecordBudgetUse(tokens=1, time_ms=1))
        await sender.send(commands[LIMIT - 1], marker, command(other, request_body()))
        letters = await eventually(lambda: letters_about(isolated, mission_id, 10))
        await eventually(lambda: archived(isolated.database_url, other))
        trail = await eventually(
            lambda: _at_least(archived(isolated.database_url, mission_id), CAP)
        )
        topic = TopicNames(isolated.topic_prefix).commands
        counted_line = f'velocity_dead_letters_total{{reason="history_full",topic="{topic}"}} 10.0'
        async with root_api(isolated, COLONY_ENABLED=False) as client:

            async def counted() -> str:
                """/metrics once the projector has stored the letters (they lag the log)."""
                text = (await client.get("/metrics")).text
                return text if counted_line in text else ""

            await eventually(counted)
            mission = (await client.get(f"/missions/{mission_id}")).json()
    types = [row["event_type"] for row in trail]
    assert len(trail) == CAP, "an ended mission keeps a tenth more, no further"
    assert types[LIMIT - 1] == "MissionFailed" and types[: LIMIT - 1].count("MissionFailed") == 0
    assert set(types[LIMIT:]) == {"CommandRejected"}, "late commands rejected as it ended"
    assert mission["status"] == "failed"
    assert mission["failure_reason"].startswith("history_limit: the mission reached 100 events")
    assert len(letters) == 10, "the marker after the redelivered command, not the redelivery"
    assert f"holds {CAP} events" in letters[0]["detail"]


async def test_mcp_reads_of_a_full_mission_are_counted_but_not_sent_to_its_stream(
    isolated: Isolated,
) -> None:
    await prepared(isolated)
    mission_id = str(uuid.uuid4())
    async with (
        ledger_services(isolated, MISSION_MAX_EVENTS=LIMIT),
        command_sender(isolated) as sender,
        root_server(isolated, MISSION_MAX_EVENTS=LIMIT) as root,
    ):
        await sender.send(*flood(mission_id, CAP))
        await eventually(
            lambda: _at_least(archived(isolated.database_url, mission_id), CAP), timeout_s=60
        )
        async with mcp_session(root, "local-service-key") as agent:
            read = answer(await agent.call_tool("mission_status", {"mission_id": mission_id}))
        # the root sends a call's record before it answers: a marker sent now lands after it
        await sender.send(command(mission_id, RecordBudgetUse(tokens=1, time_ms=1)))
        letters = await eventually(lambda: letters_about(isolated, mission_id, 1))
        trail = await archived(isolated.database_url, mission_id)
    assert read["status"] == "failed"
    assert len(trail) == CAP and len(letters) == 1, "only the marker was set aside"


async def _at_least(probe: Any, count: int) -> Any:
    found = await probe
    return found if len(found) >= count else None
