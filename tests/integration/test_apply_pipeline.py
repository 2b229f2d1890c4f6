"""The projector applies a fetch while it decodes the next one (projections/pipeline.py):
what it projects, and where it stops, are what applying fetch after fetch gives."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from infra.topics import EVENTS, TopicNames, partition_for
from ledger.codec import AvroCodec
from ledger.dead_letters import DeadLetters
from ledger.events import RecordedEvent
from ledger.log_reader import fetches_to_end
from projections.batch import BatchApplier, Seeks
from projections.feeds import ledger_feed
from projections.pipeline import ApplyPipeline
from tests.conftest import Isolated
from tests.integration.conftest import prepared
from tests.integration.test_hostile_records import (
    mission_on_another_partition,
    poison,
    produce,
    rows,
    write_events,
)
from tests.integration.test_schema_rollout import future_record, next_in_partition

pytestmark = pytest.mark.integration
Fetch = dict[TopicPartition, list[ConsumerRecord]]


async def fetches(slice_: Isolated, records_each: int) -> list[Fetch]:
    """The events topic read to its end in fetches of at most `records_each` records."""
    topic = TopicNames(slice_.topic_prefix).events
    consumer = AIOKafkaConsumer(
        bootstrap_servers=slice_.bootstrap_servers, max_poll_records=records_each
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(EVENTS.partitions)]
        return [batches async for batches in fetches_to_end(consumer, partitions)]
    finally:
        await consumer.stop()


@asynccontextmanager
async def pipeline(slice_: Isolated) -> AsyncIterator[ApplyPipeline[RecordedEvent]]:
    pool = await asyncpg.create_pool(slice_.database_url, min_size=1, max_size=2)
    producer = AIOKafkaProducer(bootstrap_servers=slice_.bootstrap_servers)
    await producer.start()
    letters = TopicNames(slice_.topic_prefix).dead_letters
    applier = BatchApplier(pool, ledger_feed(), DeadLetters(producer, letters, AvroCodec(), "t"))
    try:
        yield ApplyPipeline(applier)
    finally:
        await producer.stop()
        await pool.close()


async def test_fetches_pushed_one_after_another_are_all_projected_in_order(
    isolated: Isolated,
) -> None:
    await prepared(isolated)
    missions = [str(uuid.uuid4()) for _ in range(6)]
    await write_events(isolated, [e for m in missions for e in poison(m, "a fine objective")])
    read = await fetches(isolated, records_each=2)
    answers: list[Seeks] = []
    async with pipeline(isolated) as applying:
        for fetch in read:
            answers.append(await applying.push(fetch))
        answers.append(await applying.settle())
    statuses = await rows(isolated, "SELECT mission_id, status FROM missions")
    archive = await rows(
        isolated, "SELECT mission_id, sequence FROM ledger_events ORDER BY mission_id, sequence"
    )
    stored = await rows(
        isolated,
        "SELECT partition, next_offset FROM projector_offsets WHERE projector = $1",
        "tasks",
    )
    ends: dict[int, int] = {}
    for fetch in read:
        ends |= {tp.partition: records[-1].offset + 1 for tp, records in fetch.items()}
    assert len(read) >= 4, "the events came in several fetches"
    assert answers[0] == {}, "the first push answers for no earlier fetch"
    assert answers[1:] == [{tp: None for tp in fetch} for fetch in read]
    assert sorted((s["mission_id"], s["status"]) for s in statuses) == sorted(
        (m, "planning") for m in missions
    )
    assert [(a["mission_id"], a["sequence"]) for a in archive] == [
        (m, n) for m in sorted(missions) for n in (1, 2)
    ]
    assert {s["partition"]: s["next_offset"] for s in stored} == ends


async def test_a_partition_held_by_one_fetch_gives_the_next_fetch_nothing_of_it(
    isolated: Isolated,
) -> None:
    """Fetch N holds a partition at a record of an unknown schema; fetch N+1, decoded
    before N was applied, brings that partition's later records: none is projected, and
    both answers send the partition back to the held record. Another partition's records
    in N+1 are projected."""
    await prepared(isolated)
    newer = str(uuid.uuid4())
    held = partition_for(newer.encode(), EVENTS.partitions)
    behind, elsewhere = next_in_partition(held), mission_on_another_partition(newer)
    topic = TopicNames(isolated.topic_prefix).events
    await produce(isolated, topic, future_record(newer), newer.encode(), held)
    await write_events(isolated, poison(behind, "queued behind") + poison(elsewhere, "fine"))
    log: Fetch = {}
    for fetch in await fetches(isolated, records_each=1_000):
        for tp, records in fetch.items():
            log.setdefault(tp, []).extend(records)
    first: Fetch = {tp: records[:1] for tp, records in log.items() if tp.partition == held}
    second: Fetch = {tp: records[1:] for tp, records in log.items() if tp.partition == held}
    second |= {tp: records for tp, records in log.items() if tp.partition != held}
    async with pipeline(isolated) as applying:
        assert await applying.push(first) == {}
        after_first = await applying.push(second)
        after_second = await applying.settle()
    projected = await rows(isolated, "SELECT mission_id FROM missions")
    held_tp = next(iter(first))
    assert len(second[held_tp]) == 2, "the held partition's later records were fetched"
    assert after_first == {held_tp: 0}
    assert after_second[held_tp] == 0
    assert [p["mission_id"] for p in projected] == [elsewhere]


async def test_an_abandoned_fetch_leaves_nothing_and_is_applied_whole_when_read_again(
    isolated: Isolated,
) -> None:
    """A projector stopping on an error abandons the fetch it is applying: caught while its
    transaction waits for a lock, the archive rows it already wrote roll back and no offset
    is stored, so the fetch read again is projected once, whole."""
    await prepared(isolated)
    missions = [str(uuid.uuid4()) for _ in range(3)]
    await write_events(isolated, [e for m in missions for e in poison(m, "a fine objective")])
    fetch: Fetch = {}
    for read in await fetches(isolated, records_each=1_000):
        for tp, records in read.items():
            fetch.setdefault(tp, []).extend(records)
    blocker = await asyncpg.connect(isolated.database_url)
    try:
        locked = blocker.transaction()
        await locked.start()
        await blocker.execute("LOCK TABLE missions IN ACCESS EXCLUSIVE MODE")
        async with pipeline(isolated) as applying:
            await applying.push(fetch)
            await until_a_statement_waits_for_a_lock(blocker)
            try:  # the lock is still held: only a cancelled transaction lets this return
                await asyncio.wait_for(applying.abandon(), 10)
            finally:
                await locked.rollback()
            assert await applying.settle() == {}, "nothing is left in flight"
    finally:
        await blocker.close()
    assert await rows(isolated, "SELECT mission_id FROM ledger_events") == []
    assert await rows(isolated, "SELECT mission_id FROM missions") == []
    assert await rows(isolated, "SELECT partition FROM projector_offsets") == []

    async with pipeline(isolated) as applying:
        await applying.push(fetch)
        assert await applying.settle() == {tp: None for tp in fetch}
    archive = await rows(
        isolated, "SELECT mission_id, sequence FROM ledger_events ORDER BY mission_id, sequence"
    )
    assert [(a["mission_id"], a["sequence"]) for a in archive] == [
        (m, n) for m in sorted(missions) for n in (1, 2)
    ]
    assert len(await rows(isolated, "SELECT mission_id FROM missions")) == 3


async def until_a_statement_waits_for_a_lock(connection: asyncpg.Connection) -> None:
    """Until another session of this database waits for a lock (the lock `connection`
    holds): the fetch's transaction is then in flight, stopped mid-way."""
    for _ in range(200):
        waiting = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        if waiting:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the fetch's transaction never reached the locked table")
