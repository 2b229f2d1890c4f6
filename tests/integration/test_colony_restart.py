"""A colony taking a partition folds what it must and no more, on the real broker and
database: the missions still open at its stored offset, read from the mark stored with
that offset (colony_consumers/open_histories.py, fold_marks.py)."""

from __future__ import annotations

import asyncpg
from aiokafka import AIOKafkaProducer, TopicPartition
from loguru import logger

from colony_consumers.colony import Colony
from colony_consumers.settings import ColonySettings
from infra.topics import TopicNames
from ledger.commands import FailMission
from ledger.events import RecordedEvent
from ledger.wire import LedgerWire
from projections.offsets import save_offsets
from tests.conftest import Isolated
from tests.factories import mission_history
from tests.integration.conftest import prepared

GROUP = "velocity-colony"


async def append(slice_: Isolated, tp: TopicPartition, events: list[RecordedEvent]) -> list[int]:
    """Write `events` to one partition as the decider would; their offsets."""
    wire = LedgerWire()
    producer = AIOKafkaProducer(bootstrap_servers=slice_.bootstrap_servers, acks="all")
    await producer.start()
    try:
        offsets = []
        for event in events:
            record = wire.encode_event(event)
            sent = await producer.send_and_wait(
                tp.topic, record.value, record.key, partition=tp.partition, headers=record.headers
            )
            offsets.append(sent.offset)
        return offsets
    finally:
        await producer.stop()


def colony(slice_: Isolated, pool: asyncpg.Pool) -> Colony:
    settings = ColonySettings(KAFKA_TOPIC_PREFIX=slice_.topic_prefix, COLONY_GROUP_ID=GROUP)
    options = {"bootstrap_servers": slice_.bootstrap_servers}
    return Colony(settings, options, pool, None, None, None)  # type: ignore[arg-type]


async def test_a_restart_folds_from_the_stored_mark_only_the_missions_still_open(
    isolated: Isolated,
) -> None:
    await prepared(isolated)
    tp = TopicPartition(TopicNames(isolated.topic_prefix).events, 0)
    ended = FailMission(reason="done")
    early = [e for i in range(6) for e in mission_history(f"early-{i}", 2, ended)]
    still_open = mission_history("still-open", 1)
    later = [e for i in range(6) for e in mission_history(f"later-{i}", 2, ended)]
    offsets = await append(isolated, tp, early + still_open + later)
    opened_at, end = offsets[len(early)], offsets[-1] + 1
    pool = await asyncpg.create_pool(isolated.database_url, min_size=1, max_size=2)
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="INFO")
    try:
        async with pool.acquire() as connection:
            await save_offsets(connection, tp.topic, {(f"colony:{GROUP}", 0): end})
        first = colony(isolated, pool)  # as a colony upgraded to fold marks: none stored yet
        assert await first.prepare(tp) == end
        assert list(first.files) == ["still-open"]
        await first.flush({0})
        stored = await pool.fetchval("SELECT fold_from FROM colony_fold_marks")
        assert stored == opened_at, "the mark is where the open mission began"

        second = colony(isolated, pool)
        assert await second.prepare(tp) == end
        assert second.files["still-open"].state == first.files["still-open"].state
        assert f"folded from offset {opened_at:,} to {end:,}" in lines[-1]
        assert "folded from offset 0 " in lines[0]
        late = mission_history("early-0", 2, ended)[-1]  # rejected: that mission is over
        assert second.fold(late) is None
        assert "early-0" not in second.files
    finally:
        logger.remove(sink)
        await pool.close()


async def test_a_partition_with_nothing_to_fold_says_so(isolated: Isolated) -> None:
    """An operator reading a restart's log sees every partition accounted for, the empty
    ones too."""
    await prepared(isolated)
    tp = TopicPartition(TopicNames(isolated.topic_prefix).events, 1)
    pool = await asyncpg.create_pool(isolated.database_url, min_size=1, max_size=2)
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="INFO")
    try:
        async with pool.acquire() as connection:
            await save_offsets(connection, tp.topic, {(f"colony:{GROUP}", 1): 0})
        assert await colony(isolated, pool).prepare(tp) == 0
    finally:
        logger.remove(sink)
        await pool.close()
    assert any("partition 1: nothing to fold, reacting from offset 0" in line for line in lines)
