"""The decider against the real broker: dead letters, a whole mission, audit commands."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from infra.config import CommonSettings
from infra.topics import TopicNames
from ledger.commands import (
    RecordArtifact,
)
from ledger.operator_cli import replay, verify
from ledger.wire import LedgerWire
from tests.conftest import Isolated
from tests.factories import command, crm_script, request_body
from tests.integration.conftest import (
    archived,
    command_sender,
    dead_letters,
    eventually,
    ledger_services,
    prepared,
)

pytestmark = pytest.mark.integration
OPERATOR = "operator:local-operator"
T = TypeVar("T")


async def test_undecodable_and_invalid_commands_are_dead_lettered_and_processing_goes_on(
    isolated: Isolated,
) -> None:
    await prepared(isolated)
    topic = TopicNames(isolated.topic_prefix).commands
    wire = LedgerWire()
    good_mission = str(uuid.uuid4())
    artifact = command(
        good_mission,
        RecordArtifact(artifact_id="a", kind="k", content_hash="c" * 64, source="s", size_bytes=1),
    )
    invalid = wire.codec.encode(
        "velocity.commands.RecordArtifact",
        {"meta": artifact.meta.model_dump(), "artifact_id": "a", "kind": "k"}
        | {"content_hash": "NOT-HEX", "source": "s", "size_bytes": 1},
    )
    producer = AIOKafkaProducer(bootstrap_servers=isolated.bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"\x00garbage", key=b"k1")
        await producer.send_and_wait(topic, invalid, key=b"k2")
    finally:
        await producer.stop()
    async with ledger_services(isolated), command_sender(isolated) as sender:
        await sender.send(command(good_mission, request_body()))
        await eventually(lambda: archived(isolated.database_url, good_mission))
        letters = await eventually(
            lambda: _when(dead_letters(isolated), lambda found: len(found) >= 2)
        )
    by_reason = {letter["reason"]: letter for letter in letters}
    assert by_reason["undecodable"]["original"] == b"\x00garbage"
    assert by_reason["undecodable"]["consumer"] == "decider"
    assert "content_hash" in by_reason["invalid_command"]["detail"]
    assert by_reason["invalid_command"]["source_topic"] == topic


async def _when(coro: Awaitable[T], condition: Callable[[T], bool]) -> T | None:
    value = await coro
    return value if condition(value) else None


async def test_a_whole_crm_mission_is_archived_verified_and_replayable(
    isolated: Isolated, capsys: pytest.CaptureFixture[str]
) -> None:
    await prepared(isolated)
    mission_id = str(uuid.uuid4())
    commands = crm_script(mission_id)
    async with ledger_services(isolated), command_sender(isolated) as sender:
        await sender.send(*commands)
        await sender.send(commands[10])  # a redelivered approval: nothing more
        rows = await eventually(
            lambda: _when(archived(isolated.database_url, mission_id), lambda r: len(r) >= 14)
        )
    types = [row["event_type"] for row in rows]
    assert types == [
        "MissionRequested",
        "PlanningStarted",
        "MissionPlanned",
        "TaskStarted",
        "ToolRequestAllowed",
        "ArtifactRecorded",
        "TaskSucceeded",
        "ReviewStarted",
        "ReviewerPacketRecorded",
        "WritebackProposed",
        "ApprovalRequested",
        "WritebackApproved",
        "WritebackExecuted",
        "MissionCompleted",
    ]
    assert types.index("WritebackApproved") < types.index("WritebackExecuted")
    assert rows[11]["actor"] == OPERATOR

    settings = CommonSettings(KAFKA_TOPIC_PREFIX=isolated.topic_prefix)
    code = await verify(settings, isolated.bootstrap_servers, isolated.database_url, None, False)
    assert code == 0, capsys.readouterr()
    assert "every chain intact" in capsys.readouterr().out

    as_of = rows[10]["occurred_at"] + timedelta(microseconds=1)
    assert await replay(isolated.database_url, mission_id, as_of, as_json=False) == 0
    out = capsys.readouterr().out
    assert "status=awaiting_approval" in out
    assert "WritebackApproved" not in out


async def test_verify_reports_the_first_tampered_event(
    isolated: Isolated, capsys: pytest.CaptureFixture[str]
) -> None:
    await prepared(isolated)
    mission_id = str(uuid.uuid4())
    async with ledger_services(isolated), command_sender(isolated) as sender:
        await sender.send(*crm_script(mission_id))
        await eventually(
            lambda: _when(archived(isolated.database_url, mission_id), lambda r: len(r) >= 14)
        )
    wire = LedgerWire()
    connection = await asyncpg.connect(isolated.database_url)
    try:
        original = await connection.fetchval(
            "SELECT record FROM ledger_events WHERE mission_id = $1 AND sequence = 12", mission_id
        )
        event = wire.decode_event(original)
        forged = event.model_copy(
            update={"body": event.body.model_copy(update={"decided_by": "operator:mallory"})}
        )
        await connection.execute(
            "ALTER TABLE ledger_events DISABLE TRIGGER ledger_events_no_update_or_delete"
        )
        await connection.execute(
            "UPDATE ledger_events SET record = $2 WHERE mission_id = $1 AND sequence = 12",
            mission_id,
            wire.encode_event(forged).value,
        )
    finally:
        await connection.close()
    settings = CommonSettings(KAFKA_TOPIC_PREFIX=isolated.topic_prefix)
    code = await verify(settings, isolated.bootstrap_servers, isolated.database_url, None, True)
    out = capsys.readouterr().out
    assert code == 1
    assert f"mission {mission_id} sequence 12: hash does not match" in out
