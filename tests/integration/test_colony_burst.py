"""A burst of events beyond the colony's limit of unfinished reactions (a backlog after an
outage, a bulk import) pauses its fetching; it resumes as the reactions finish, and the
colony reads to the end of the log. On the real broker and database, with a stand-in
worker (the colony's own collaborator) that performs every reaction at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from colony_consumers.colony import Colony
from colony_consumers.metric_emitter import MetricEmitter
from colony_consumers.mission_file import MissionFile
from colony_consumers.reactions import Send
from colony_consumers.settings import ColonySettings
from infra.topics import EVENTS, TopicNames, partition_for
from ledger.commands import CancelMission, QueueMission, StartPlanning
from ledger.events import RecordedEvent
from ledger.metrics import MetricWire
from ledger.state import MissionState
from ledger.step import step
from ledger.wire import LedgerWire
from tests.conftest import Isolated
from tests.factories import AUTHORITY, OPERATOR, command, mission_history, request_body
from tests.integration.conftest import eventually, prepared

GROUP = "velocity-colony-burst"
MISSIONS = 300
"""Beyond the 100 unfinished reactions the colony allows with one slot and one worker, and
more than the records a fetch of its brings: its first batch pauses it."""
LATE = 0
LATE_HISTORY = 4_000
"""Open missions folded before partition LATE is ready: the others' burst pauses the colony
first."""
LATE_BURST = 400
FETCHED = 200
"""The most records one fetch of the colony's hands it: the limit is checked after each."""


class InstantWorker:
    """Performs every reaction at once and keeps count."""

    def __init__(self) -> None:
        self.performed = 0

    async def perform(self, *args: Any) -> None:
        self.performed += 1


async def write_requests(
    isolated: Isolated, name: str, count: int, partition: int | None = None
) -> dict[int, int]:
    """`count` new missions' requests, each on its key's partition or all on `partition`;
    each partition's end."""
    wire, names = LedgerWire(), TopicNames(isolated.topic_prefix)
    producer = AIOKafkaProducer(bootstrap_servers=isolated.bootstrap_servers, acks="all")
    await producer.start()
    sending = []
    try:
        for index in range(count):
            (request, *_) = mission_history(f"{name}-{index}")
            record = wire.encode_event(request)
            to = partition_for(record.key, EVENTS.partitions) if partition is None else partition
            sending.append(
                await producer.send(
                    names.events, record.value, record.key, to, headers=record.headers
                )
            )
        sent = await asyncio.gather(*sending)
    finally:
        await producer.stop()
    ends: dict[int, int] = {}
    for metadata in sent:
        ends[metadata.partition] = max(ends.get(metadata.partition, 0), metadata.offset + 1)
    return ends


class HoldingWorker:
    """Holds every reaction until `release` is set, and notes how many were held at once."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.held = 0
        self.peak = 0
        self.performed = 0

    async def perform(self, *args: Any) -> None:
        self.held += 1
        self.peak = max(self.peak, self.held)
        await self.release.wait()
        self.held -= 1
        self.performed += 1


@asynccontextmanager
async def running_colony(
    isolated: Isolated, worker: InstantWorker | HoldingWorker | RecordingWorker
) -> AsyncIterator[tuple[Colony, asyncpg.Pool]]:
    """A colony allowing 100 unfinished reactions, with `worker`, until the block ends."""
    settings = ColonySettings(
        KAFKA_TOPIC_PREFIX=isolated.topic_prefix,
        COLONY_GROUP_ID=GROUP,
        MAX_CONCURRENT_MISSIONS=1,
        MAX_WORKERS_PER_MISSION=1,
    )
    options = {"bootstrap_servers": isolated.bootstrap_servers}
    pool = await asyncpg.create_pool(isolated.database_url, min_size=1, max_size=2)
    producer = AIOKafkaProducer(**options)
    metrics = MetricEmitter(producer, TopicNames(isolated.topic_prefix).metrics, MetricWire())
    colony = Colony(settings, options, pool, worker, producer, metrics)  # type: ignore[arg-type]
    assert colony.max_in_flight < FETCHED < MISSIONS
    stop = asyncio.Event()
    running = asyncio.create_task(colony.run(stop))
    try:
        yield colony, pool
    finally:
        stop.set()
        await running
        await pool.close()


async def stored_at_the_end(colony: Colony, pool: asyncpg.Pool, ends: dict[int, int]) -> bool:
    rows = await pool.fetch(
        "SELECT partition, next_offset FROM projector_offsets WHERE projector = $1",
        colony.offsets_name,
    )
    stored = {row["partition"]: row["next_offset"] for row in rows}
    return all(stored.get(partition, 0) >= end for partition, end in ends.items())


async def test_a_burst_beyond_the_in_flight_limit_is_read_to_the_end(isolated: Isolated) -> None:
    await prepared(isolated)
    ends = await write_requests(isolated, "burst", MISSIONS)
    worker = InstantWorker()
    async with running_colony(isolated, worker) as (colony, pool):
        await eventually(lambda: stored_at_the_end(colony, pool, ends), timeout_s=30)
    assert worker.performed == MISSIONS, "every mission's request was reacted to"


async def test_a_partition_ready_while_held_does_not_fetch_past_the_limit(
    isolated: Isolated,
) -> None:
    """The colony resumes each partition when it has folded the missions open there. One
    with a long history is ready last, after the others' burst has paused the colony: it
    must wait paused too (it was resumed and fetched on unchecked, everything it held)."""
    await prepared(isolated)
    history = await write_requests(isolated, "open", LATE_HISTORY, LATE)
    topic = TopicNames(isolated.topic_prefix).events
    connection = await asyncpg.connect(isolated.database_url)
    try:  # the colony stopped at the history's end, every mission in it still open
        await connection.execute(
            "INSERT INTO projector_offsets (projector, topic, partition, next_offset)"
            " VALUES ($1, $2, $3, $4)",
            f"colony:{GROUP}",
            topic,
            LATE,
            history[LATE],
        )
        await connection.execute(
            "INSERT INTO colony_fold_marks (consumer, topic, partition, fold_from)"
            " VALUES ($1, $2, $3, 0)",
            f"colony:{GROUP}",
            topic,
            LATE,
        )
    finally:
        await connection.close()
    ends = await write_requests(isolated, "early", MISSIONS)
    ends |= await write_requests(isolated, "late", LATE_BURST, LATE)
    worker = HoldingWorker()
    async with running_colony(isolated, worker) as (colony, pool):

        async def settled() -> bool:
            before = worker.held
            await asyncio.sleep(1.0)
            return LATE in colony.partitions and colony.throttled and worker.held == before

        await eventually(settled, timeout_s=30)
        assert worker.peak <= colony.max_in_flight + FETCHED, (
            f"{worker.peak} reactions at once, limit {colony.max_in_flight}"
        )
        worker.release.set()
        await eventually(lambda: stored_at_the_end(colony, pool, ends), timeout_s=60)
    assert worker.performed >= MISSIONS + LATE_BURST, "every request after the stop reacted to"


class RecordingWorker:
    """Performs every reaction at once and notes, for each, its mission and the commands
    it sends (by their step names: `plan/start`, `queue`, …)."""

    def __init__(self) -> None:
        self.performed: list[tuple[str, list[str]]] = []

    async def perform(self, file: MissionFile, meta: Any, reaction: Any, context: Any) -> None:
        steps = [name for name, _ in reaction.commands] if isinstance(reaction, Send) else []
        self.performed.append((file.mission_id, steps))

    def started(self, mission_id: str) -> bool:
        return any(m == mission_id and "plan/start" in steps for m, steps in self.performed)


async def write_events(isolated: Isolated, events: list[RecordedEvent], partition: int) -> None:
    """`events` appended in this order to one partition of the events topic."""
    wire, names = LedgerWire(), TopicNames(isolated.topic_prefix)
    producer = AIOKafkaProducer(bootstrap_servers=isolated.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for event in events:
            record = wire.encode_event(event)
            await producer.send_and_wait(
                names.events, record.value, record.key, partition, headers=record.headers
            )
    finally:
        await producer.stop()


async def test_a_mission_queued_after_the_slot_freed_is_started(isolated: Isolated) -> None:
    """One slot. A works; B is requested meanwhile (so it is told to queue, and takes a
    slot until its queueing is in the log); A ends before B's queueing comes back, so
    when A's slot frees nobody waits yet. B must still start once it is queued: the
    colony used to look for waiting missions only when a working one stopped, and a
    burst of requests could leave every queued mission waiting until its time budget
    failed it (1,938 of 2,000 Oracle missions in one run, `MAX_CONCURRENT_MISSIONS=20`)."""
    await prepared(isolated)
    states = {"a": MissionState(mission_id="a"), "b": MissionState(mission_id="b")}
    ordered: list[RecordedEvent] = []
    for mission, body, actor in [
        ("a", request_body(), "service:test"),
        ("a", StartPlanning(planner="p"), "colony:test"),
        ("b", request_body(), "service:test"),
        ("a", CancelMission(reason="done"), OPERATOR),
        ("b", QueueMission(position=1, limit=1), "colony:test"),
    ]:
        item = command(mission, body, actor=actor)
        states[mission], events = step(states[mission], item, datetime.now(UTC), AUTHORITY)
        ordered += events
    await write_events(isolated, ordered, partition=0)
    worker = RecordingWorker()

    async def b_started() -> bool | None:
        return True if worker.started("b") else None

    async with running_colony(isolated, worker):
        await eventually(b_started, timeout_s=20)
    assert ("b", ["queue"]) in worker.performed, "B was told to queue while A worked"
