"""Rare faults of the single writer, put exactly where they hurt with the decider's drill
faults (ledger/faults.py): a refused write, a kill right after any acknowledged batch, a
rebuild slower than the session timeout, and records that are not history in the log.
The log ends with every mission's history whole: gap-free, each command applied once,
each command's events together, `velocity ledger verify` clean."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from infra.config import CommonSettings
from infra.topics import EVENTS, TopicNames, partition_for
from ledger.chain import record
from ledger.commands import StartPlanning
from ledger.events import PlanningStarted, RecordedEvent
from ledger.operator_cli import verify
from ledger.state import fold
from ledger.wire import LedgerWire
from tests.conftest import Isolated
from tests.factories import command, crm_script, request_body
from tests.integration.conftest import (
    archived,
    command_sender,
    decider_process,
    eventually,
    ledger_services,
    log_events,
    prepared,
)

pytestmark = pytest.mark.integration
COMMANDS_PER_MISSION = 13
EVENTS_PER_MISSION = 14  # ProposeWriteback appends two


def assert_whole(events: list[RecordedEvent], missions: list[str]) -> None:
    """Every mission's history complete in the log: 1..14 once each, the proposal's two
    events side by side, no command applied twice."""
    for mission_id in missions:
        mine = [e for e in events if e.meta.mission_id == mission_id]
        assert [e.meta.sequence for e in mine] == list(range(1, EVENTS_PER_MISSION + 1)), mission_id
        types = [e.event_type for e in mine]
        assert types[types.index("WritebackProposed") + 1] == "ApprovalRequested"
        causes = Counter(e.meta.causation_id for e in mine)
        assert max(causes.values()) <= 2 and len(causes) == COMMANDS_PER_MISSION


async def all_archived(slice_: Isolated, missions: list[str]) -> bool:
    for mission_id in missions:
        if len(await archived(slice_.database_url, mission_id)) < EVENTS_PER_MISSION:
            return False
    return True


async def verified(slice_: Isolated, capsys: pytest.CaptureFixture[str]) -> str:
    settings = CommonSettings(KAFKA_TOPIC_PREFIX=slice_.topic_prefix)
    code = await verify(settings, slice_.bootstrap_servers, slice_.database_url, None, False)
    out = capsys.readouterr().out
    assert code == 0, out
    return out


async def test_a_refused_write_drops_the_partitions_decisions_and_decides_them_again(
    isolated: Isolated, capsys: pytest.CaptureFixture[str]
) -> None:
    await prepared(isolated)
    missions = [str(uuid.uuid4()) for _ in range(6)]
    async with ledger_services(isolated, DECIDER_FAULT="refuse:2") as (decider, _):
        async with command_sender(isolated) as sender:
            await sender.send(*(c for m in missions for c in crm_script(m)))
        await eventually(lambda: all_archived(isolated, missions), timeout_s=60)
        rebuilds = decider.rebuilds
    assert rebuilds > len(decider.states), "the failed partition was rebuilt from the log"
    assert_whole(await log_events(isolated), missions)
    assert "every chain intact" in await verified(isolated, capsys)


async def test_a_decider_killed_right_after_any_batch_never_leaves_half_a_command(
    isolated: Isolated, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await prepared(isolated)
    missions = [str(uuid.uuid4()) for _ in range(4)]
    group = f"kill-{uuid.uuid4().hex[:6]}"
    scripts = {m: crm_script(m) for m in missions}
    async with ledger_services(isolated, with_decider=False), command_sender(isolated) as sender:
        # each round sends new commands and a decider that dies right after its first
        # acknowledged batch; the round of index 9 is the two-event ProposeWriteback
        for number, steps in enumerate(((0, 1, 2, 3), (4, 5, 6, 7, 8), (9,), (10,), (11,))):
            await sender.send(*(scripts[m][i] for i in steps for m in missions))
            doomed = decider_process(isolated, group, tmp_path / f"kill-{number}.log")
            doomed.env["DECIDER_FAULT"] = "kill:1"
            doomed.start()
            assert doomed.process is not None
            assert await asyncio.to_thread(doomed.process.wait, 60) == -9
        await sender.send(*(scripts[m][12] for m in missions))
        survivor = decider_process(isolated, group, tmp_path / "survivor.log")
        survivor.start()
        try:
            await eventually(lambda: all_archived(isolated, missions), timeout_s=90)
        finally:
            survivor.stop()
    assert_whole(await log_events(isolated), missions)
    assert "every chain intact" in await verified(isolated, capsys)


async def test_a_rebuild_slower_than_the_session_timeout_keeps_the_member_and_forks_nothing(
    isolated: Isolated, capsys: pytest.CaptureFixture[str]
) -> None:
    await prepared(isolated)
    missions = [str(uuid.uuid4()) for _ in range(3)]
    async with ledger_services(
        isolated, KAFKA_SESSION_TIMEOUT_MS=2_000, DECIDER_FAULT="slow_rebuild:6000"
    ) as (decider, _):
        async with command_sender(isolated) as sender:
            await sender.send(*(c for m in missions for c in crm_script(m)))
        await eventually(lambda: all_archived(isolated, missions), timeout_s=60)
        assignments = decider.loop.assignments
    assert assignments == 1, "the member was evicted while it rebuilt"
    assert_whole(await log_events(isolated), missions)
    await verified(isolated, capsys)


async def test_records_that_are_not_history_are_set_aside_and_ignored_by_every_reader(
    isolated: Isolated, capsys: pytest.CaptureFixture[str]
) -> None:
    await prepared(isolated)
    mission_id = str(uuid.uuid4())
    async with ledger_services(isolated), command_sender(isolated) as sender:
        await sender.send(command(mission_id, request_body()))
        first = await eventually(lambda: archived(isolated.database_url, mission_id))
        genuine = LedgerWire().decode_event(first[0]["record"])
        forged = record(
            fold(mission_id, [genuine]),
            command(mission_id, StartPlanning(planner="forger")),
            [PlanningStarted(planner="forger")],
            datetime.now(UTC),
        )[0]
        orphan = forged.model_copy(update={"meta": forged.meta.model_copy(update={"sequence": 9})})
        duplicate = genuine.model_copy(
            update={"meta": genuine.meta.model_copy(update={"event_id": str(uuid.uuid4())})}
        )
        await write(isolated, duplicate, orphan)
        await eventually(lambda: _set_aside_count(isolated, 2))
    # a new decider rebuilds from this log, then decides the next command at sequence 2
    async with ledger_services(isolated), command_sender(isolated) as sender:
        await sender.send(command(mission_id, StartPlanning(planner="planner")))
        trail = await eventually(lambda: _at_least(archived(isolated.database_url, mission_id), 2))
    assert [(r["sequence"], r["event_type"]) for r in trail] == [
        (1, "MissionRequested"),
        (2, "PlanningStarted"),
    ]
    assert trail[1]["data"] == '{"planner": "planner"}'
    out = await verified(isolated, capsys)
    assert out.count("not history") == 2


async def write(slice_: Isolated, *events: RecordedEvent) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=slice_.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for event in events:
            out = LedgerWire().encode_event(event)
            partition = partition_for(out.key, EVENTS.partitions)
            topic = TopicNames(slice_.topic_prefix).events
            await producer.send_and_wait(topic, out.value, out.key, partition)
    finally:
        await producer.stop()


async def _set_aside_count(slice_: Isolated, count: int) -> bool:
    import asyncpg

    connection = await asyncpg.connect(slice_.database_url)
    try:
        rows = await connection.fetch("SELECT reason FROM ledger_set_aside")
    finally:
        await connection.close()
    return len(rows) >= count and all(r["reason"] == "not_history" for r in rows)


async def _at_least(rows_coro, count: int):  # type: ignore[no-untyped-def]
    rows = await rows_coro
    return rows if len(rows) >= count else None


async def test_a_write_by_another_writer_makes_the_decider_rebuild_before_deciding_on(
    isolated: Isolated, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stalled decider woke and appended the next event of a mission (the same command
    the live decider is about to decide): the live one's own write then lands past where it
    expected, so it rebuilds, and its next decisions link to the history, not its own."""
    await prepared(isolated)
    mission_id = str(uuid.uuid4())
    start = command(mission_id, StartPlanning(planner="planner"))
    plan = crm_script(mission_id)[2]
    async with ledger_services(isolated) as (decider, _), command_sender(isolated) as sender:
        await sender.send(command(mission_id, request_body()))
        first = await eventually(lambda: archived(isolated.database_url, mission_id))
        genuine = LedgerWire().decode_event(first[0]["record"])
        zombie = record(
            fold(mission_id, [genuine]),
            start,
            [PlanningStarted(planner="zombie")],
            datetime.now(UTC),
        )
        await write(isolated, *zombie)
        rebuilds = decider.rebuilds
        await sender.send(start)
        await eventually(lambda: _more_than(decider, rebuilds))
        await sender.send(command(mission_id, plan.body, command_id=plan.meta.command_id))
        trail = await eventually(lambda: _at_least(archived(isolated.database_url, mission_id), 3))
    assert [(r["sequence"], r["event_type"]) for r in trail] == [
        (1, "MissionRequested"),
        (2, "PlanningStarted"),
        (3, "MissionPlanned"),
    ]
    assert trail[1]["data"] == '{"planner": "zombie"}', "the first writer wins"
    assert trail[2]["prev_hash"] == trail[1]["hash"]
    assert "not history" in await verified(isolated, capsys)


async def _more_than(decider: Any, rebuilds: int) -> bool:
    return bool(decider.rebuilds > rebuilds)
