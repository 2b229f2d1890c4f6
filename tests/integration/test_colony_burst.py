"""A burst of events beyond the colony's limit of unfinished reactions (a backlog after an
outage, a bulk import) pauses its fetching; it resumes as the reactions finish, and the
colony reads to the end of the log. On the real broker and database, with a stand-in
worker (the colony's own collaborator) that performs every reaction at once."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from colony_consumers.colony import Colony
from colony_consumers.metric_emitter import MetricEmitter
from colony_consumers.settings import ColonySettings
from infra.topics import EVENTS, TopicNames, partition_for
from ledger.metrics import MetricWire
from ledger.wire import LedgerWire
from tests.conftest import Isolated
from tests.factories import mission_history
from tests.integration.conftest import eventually, prepared

GROUP = "velocity-colony-burst"
MISSIONS = 300
"""Beyond the 100 unfinished reactions the colony allows with one slot and one worker, and
more than the 200 records a fetch of its brings: its first batch pauses it."""


class InstantWorker:
    """Performs every reaction at once and keeps count."""

    def __init__(self) -> None:
        self.performed = 0

    async def perform(self, *args: Any) -> None:
        self.performed += 1


async def write_requests(isolated: Isolated) -> dict[int, int]:
    """One new mission's request per mission, each on its partition; each partition's end."""
    wire, names = LedgerWire(), TopicNames(isolated.topic_prefix)
    producer = AIOKafkaProducer(bootstrap_servers=isolated.bootstrap_servers, acks="all")
    await producer.start()
    ends: dict[int, int] = {}
    try:
        for index in range(MISSIONS):
            (request, *_) = mission_history(f"burst-{index}")
            record = wire.encode_event(request)
            partition = partition_for(record.key, EVENTS.partitions)
            sent = await producer.send_and_wait(
                names.events, record.value, record.key, partition, headers=record.headers
            )
            ends[partition] = sent.offset + 1
    finally:
        await producer.stop()
    return ends


async def test_a_burst_beyond_the_in_flight_limit_is_read_to_the_end(isolated: Isolated) -> None:
    await prepared(isolated)
    ends = await write_requests(isolated)
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
    worker = InstantWorker()
    colony = Colony(settings, options, pool, worker, producer, metrics)  # type: ignore[arg-type]
    assert colony.max_in_flight < 200 < MISSIONS
    stop = asyncio.Event()
    running = asyncio.create_task(colony.run(stop))

    async def stored_at_the_end() -> bool:
        rows = await pool.fetch(
            "SELECT partition, next_offset FROM projector_offsets WHERE projector = $1",
            colony.offsets_name,
        )
        stored = {row["partition"]: row["next_offset"] for row in rows}
        return all(stored.get(partition, 0) >= end for partition, end in ends.items())

    try:
        await eventually(stored_at_the_end, timeout_s=30)
    finally:
        stop.set()
        await running
        await pool.close()
    assert worker.performed == MISSIONS, "every mission's request was reacted to"
