"""An empty broker beside a full archive: refused by default, restored on request, and
the decider continues each old mission's sequence and dedupe from the restored log."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from functools import partial

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from infra.broker import start_broker
from infra.preparation import DivergedLedgerError
from infra.topics import EVENTS, TopicNames, partition_for
from ledger.log_reader import read_to_end
from ledger.restore import BATCH, BATCH_BYTES, RestoreError, restore_log
from tests.conftest import Isolated
from tests.factories import command, request_body
from tests.integration.conftest import (
    archived,
    command_sender,
    eventually,
    ledger_services,
    prepared,
)

pytestmark = pytest.mark.integration


async def test_empty_broker_is_refused_then_restored_and_sequences_continue(
    isolated: Isolated,
) -> None:
    await prepared(isolated)
    missions = [str(uuid.uuid4()) for _ in range(3)]
    first_commands = [command(m, request_body()) for m in missions]
    async with ledger_services(isolated), command_sender(isolated) as sender:
        await sender.send(*first_commands)
        for mission_id in missions:
            await eventually(partial(archived, isolated.database_url, mission_id))

    fresh_broker = await asyncio.to_thread(
        start_broker
    )  # memory only: as the embedded broker after a restart
    try:
        emptied = Isolated(
            fresh_broker.bootstrap_servers, isolated.database_url, isolated.topic_prefix
        )
        with pytest.raises(DivergedLedgerError, match="lacks 3 events"):
            await prepared(emptied)
        await prepared(emptied, restore=True)
        await prepared(emptied)  # nothing missing any more

        async with ledger_services(emptied), command_sender(emptied) as sender:
            await sender.send(first_commands[0])  # redelivered: must append nothing
            await sender.send(command(missions[0], request_body()))  # new id: rejected, seq 2
            rows = await eventually(
                lambda: _at_least(archived(isolated.database_url, missions[0]), 2)
            )
    finally:
        fresh_broker.stop()
    assert [r["sequence"] for r in rows] == [1, 2]
    assert rows[1]["event_type"] == "CommandRejected"
    assert rows[1]["prev_hash"] == rows[0]["hash"]


async def _at_least(rows_coro, count: int):  # type: ignore[no-untyped-def]
    rows = await rows_coro
    return rows if len(rows) >= count else None


async def test_records_that_are_no_events_are_restored_at_their_offsets(
    isolated: Isolated,
) -> None:
    await prepared(isolated)
    topic = TopicNames(isolated.topic_prefix).events
    mission_id = str(uuid.uuid4())
    home = partition_for(mission_id.encode(), EVENTS.partitions)
    producer = AIOKafkaProducer(bootstrap_servers=isolated.bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"not an event", key=b"junk", partition=home)
    finally:
        await producer.stop()
    async with ledger_services(isolated), command_sender(isolated) as sender:
        await sender.send(command(mission_id, request_body()))
        rows = await eventually(lambda: archived(isolated.database_url, mission_id))
    assert rows[0]["topic_offset"] == 1, "the junk took offset 0"

    fresh_broker = await asyncio.to_thread(start_broker)
    try:
        emptied = Isolated(
            fresh_broker.bootstrap_servers, isolated.database_url, isolated.topic_prefix
        )
        await prepared(emptied, restore=True)  # raises if any offset would move
        restored = await log_records(emptied, home)
    finally:
        fresh_broker.stop()
    assert [(r.offset, r.value) for r in restored][:1] == [(0, b"not an event")]
    assert restored[1].value == rows[0]["record"]


async def log_records(slice_: Isolated, partition: int) -> list[ConsumerRecord]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=slice_.bootstrap_servers, enable_auto_commit=False, fetch_max_wait_ms=50
    )
    await consumer.start()
    found: list[ConsumerRecord] = []
    try:
        tp = TopicPartition(TopicNames(slice_.topic_prefix).events, partition)
        async for _, records in read_to_end(consumer, [tp]):
            found.extend(records)
    finally:
        await consumer.stop()
    return found


async def test_a_long_archive_is_restored_batch_by_batch_byte_for_byte(isolated: Isolated) -> None:
    """More rows than one read of the archive, and records too large to share a produce
    batch: every record lands at its archived offset with its key and bytes, and the
    progress reaches the total chunk by chunk."""
    await prepared(isolated)
    partition = 2
    archive = [
        (
            offset,
            None if offset % 7 == 0 else f"key-{offset}".encode(),
            (b"L" * (BATCH_BYTES * 2 // 3))
            if offset % 1_000 == 500
            else f"record {offset}".encode(),
        )
        for offset in range(BATCH + 1_500)
    ]
    await set_aside(isolated.database_url, partition, archive)
    seen: list[tuple[int, int]] = []
    connection = await asyncpg.connect(isolated.database_url)
    try:
        options = {"bootstrap_servers": isolated.bootstrap_servers}
        names = TopicNames(isolated.topic_prefix)
        done = await restore_log(options, names, connection, lambda d, t: seen.append((d, t)))
    finally:
        await connection.close()
    restored = await log_records(isolated, partition)
    assert done == len(archive)
    assert [(r.offset, r.key, r.value) for r in restored] == archive
    assert len(seen) >= 2 and seen[-1] == (len(archive), len(archive))


async def test_a_gap_in_the_archive_stops_the_restore_where_it_is(isolated: Isolated) -> None:
    """The archive must be a gap-free copy of the log: a missing row stops the restore,
    naming the partition and the offset, rather than shift every later record."""
    await prepared(isolated)
    rows = [(offset, b"k", b"v") for offset in range(20) if offset != 11]
    await set_aside(isolated.database_url, 4, rows)
    connection = await asyncpg.connect(isolated.database_url)
    try:
        options = {"bootstrap_servers": isolated.bootstrap_servers}
        with pytest.raises(RestoreError, match="partition 4: archive has offset 12 where 11"):
            await restore_log(options, TopicNames(isolated.topic_prefix), connection)
    finally:
        await connection.close()


async def set_aside(
    database_url: str, partition: int, rows: Sequence[tuple[int, bytes | None, bytes]]
) -> None:
    """Archive `rows` (offset, key, bytes) as records that are no events, as the projector
    keeps what it cannot chain."""
    connection = await asyncpg.connect(database_url)
    try:
        await connection.copy_records_to_table(
            "ledger_set_aside",
            records=[(partition, o, k, v, "undecodable", "test") for o, k, v in rows],
            columns=["topic_partition", "topic_offset", "record_key", "record", "reason", "detail"],
        )
    finally:
        await connection.close()
