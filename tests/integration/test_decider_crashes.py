"""The decider killed (SIGKILL) mid-stream, and two deciders sharing partitions: the log
keeps no duplicate, no gap and no lost command."""

from __future__ import annotations

import asyncio
import random
import signal
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pytest

from ledger.chain import verify_link
from ledger.commands import (
    BeginReview,
    Command,
    CompleteTask,
    PlannedTask,
    RecordPlan,
    StartPlanning,
    StartTask,
)
from ledger.events import GENESIS_HASH, CommandRejected, RecordedEvent
from tests.conftest import Isolated
from tests.factories import command, request_body
from tests.integration.conftest import (
    command_sender,
    decider_process,
    eventually,
    log_events,
    logged,
    prepared,
)

pytestmark = pytest.mark.integration
MISSIONS = 40
STEPS_PER_MISSION = 8


def mission_script(mission_id: str) -> list[Command]:
    """Eight commands that, applied once each in order, all succeed."""
    plan = [PlannedTask(task_id=t, kind="k", description="d") for t in ("a", "b")]
    bodies = [
        request_body(),
        StartPlanning(planner="p"),
        RecordPlan(tasks=plan, rationale="r"),
        StartTask(task_id="a", worker="w"),
        CompleteTask(task_id="a", summary="s", tokens_used=1, duration_ms=1),
        StartTask(task_id="b", worker="w"),
        CompleteTask(task_id="b", summary="s", tokens_used=1, duration_ms=1),
        BeginReview(reviewer="r"),
    ]
    return [command(mission_id, body) for body in bodies]


def interleaved(scripts: list[list[Command]]) -> list[Command]:
    """All commands, each mission's in order, missions interleaved at random, and one in
    twenty sent twice (as a producer retry would)."""
    queues = [list(s) for s in scripts]
    stream: list[Command] = []
    rng = random.Random(7)
    while any(queues):
        queue = rng.choice([q for q in queues if q])
        stream.append(queue.pop(0))
        if rng.random() < 0.05:
            stream.append(stream[-1])
    return stream


def assert_exactly_once(events: list[RecordedEvent], sent: list[Command]) -> None:
    by_mission: dict[str, list[RecordedEvent]] = defaultdict(list)
    for event in events:
        by_mission[event.meta.mission_id].append(event)
    assert len(by_mission) == MISSIONS
    for mission_id, stream in by_mission.items():
        assert [e.meta.sequence for e in stream] == list(range(1, len(stream) + 1)), mission_id
        previous = GENESIS_HASH
        for event in stream:
            assert verify_link(previous, event), (mission_id, event.meta.sequence)
            previous = event.meta.hash
        rejected = [e.body for e in stream if isinstance(e.body, CommandRejected)]
        assert rejected == [], f"{mission_id}: a command was applied twice: {rejected}"
        assert len(stream) == STEPS_PER_MISSION, mission_id
    causes = [e.meta.causation_id for e in events]
    assert sorted(causes) == sorted({c.meta.command_id for c in sent}), "lost or extra command"


async def send_in_chunks(slice_: Isolated, stream: list[Command], pause_s: float) -> None:
    async with command_sender(slice_) as sender:
        for start in range(0, len(stream), 10):
            await sender.send(*stream[start : start + 10])
            await asyncio.sleep(pause_s)


async def complete_log(slice_: Isolated) -> list[RecordedEvent]:
    async def done() -> list[RecordedEvent] | None:
        events = await log_events(slice_)
        return events if len(events) >= MISSIONS * STEPS_PER_MISSION else None

    events: list[RecordedEvent] = await eventually(done, timeout_s=90, pause_s=0.5)
    return events


async def test_sigkilled_decider_restarts_without_duplicates_gaps_or_losses(
    isolated: Isolated, tmp_path: Path
) -> None:
    await prepared(isolated)
    stream = interleaved([mission_script(str(uuid.uuid4())) for _ in range(MISSIONS)])
    decider = decider_process(isolated, f"crash-{uuid.uuid4().hex[:6]}", tmp_path / "d.log")
    decider.start()
    sending = asyncio.create_task(send_in_chunks(isolated, stream, pause_s=0.15))
    try:
        rng = random.Random(11)
        for _ in range(3):
            await asyncio.sleep(rng.uniform(0.5, 2.0))
            decider.kill()
            decider.start()
        await sending
        events = await complete_log(isolated)
        await asyncio.sleep(1)  # anything duplicated late would show up now
        events = await log_events(isolated)
    finally:
        decider.stop()
    assert_exactly_once(events, stream)


async def test_two_deciders_hand_partitions_over_mid_stream(
    isolated: Isolated, tmp_path: Path
) -> None:
    await prepared(isolated)
    stream = interleaved([mission_script(str(uuid.uuid4())) for _ in range(MISSIONS)])
    group = f"pair-{uuid.uuid4().hex[:6]}"
    first = decider_process(isolated, group, tmp_path / "first.log")
    second = decider_process(isolated, group, tmp_path / "second.log")
    first.start()
    sending = asyncio.create_task(send_in_chunks(isolated, stream, pause_s=0.15))
    try:
        await asyncio.sleep(1.0)
        second.start()  # partitions move from first to second
        await asyncio.sleep(2.5)
        first.stop()  # and all of them back to second
        await sending
        await complete_log(isolated)
        await asyncio.sleep(1)
        events = await log_events(isolated)
    finally:
        first.stop()
        second.stop()
    assert_exactly_once(events, stream)


async def test_a_decider_stopped_while_rejoining_after_a_crash_exits_promptly(
    isolated: Isolated, tmp_path: Path
) -> None:
    """Ctrl-C soon after a kill -9: the restarted decider is still joining its group (the
    broker holds the join until the killed member's session expires, ~15 s here) and must
    stop at once rather than when the join completes."""
    await prepared(isolated)
    log_path = tmp_path / "d.log"
    decider = decider_process(isolated, f"rejoin-{uuid.uuid4().hex[:6]}", log_path)
    decider.env["KAFKA_SESSION_TIMEOUT_MS"] = "10000"
    decider.start()
    try:
        await eventually(lambda: logged(log_path, "owns partitions", 1), timeout_s=60)
        decider.kill()
        decider.start()
        await eventually(lambda: logged(log_path, "decider starting", 2), timeout_s=30)
        await asyncio.sleep(1.0)  # its consumer is now waiting in JoinGroup
        assert decider.process is not None
        stopped_at = time.monotonic()
        decider.process.send_signal(signal.SIGINT)
        code = await asyncio.to_thread(decider.process.wait, 40)
        took_s = time.monotonic() - stopped_at
    finally:
        decider.stop()
    assert code == 0
    assert took_s < 8, f"the stop waited {took_s:.1f} s for the group join"
    assert await logged(log_path, "still joining the group", 1)
