"""bench/colony_soak: the colony's resident memory as the event log grows to a million
events, and how long a restarted colony takes to react again.

The whole stack runs (decider, projector, colony, root). Missions of ten commands (a
request, eight budget records, a failure) are produced in steps; the colony folds every
event, reacts to each request (its StartPlanning comes after the failure and is
rejected: one more event) and emits its measurements. After each step, once the colony
has stored offsets at the end of every partition, its RSS is read from /proc. Memory
should stay flat: the colony keeps only missions being worked, and ended ones by id in a
bounded cache. Then the colony is restarted and a new mission requested: the time until
the colony starts planning it is a restart with a million events in the log (it folds
only the missions still open: colony_consumers/open_histories.py).

Run with `make bench-soak` (after the decider's soak) or
`python -m bench.colony_soak [EVENTS]`, default 1,000,000.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from datetime import UTC, datetime

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.common import (
    BenchStack,
    embedded_infrastructure,
    mission_commands,
    produce_commands,
    running_stack,
)
from bench.results import record
from bench.soak import SETTLE_S, rss_mb
from infra.topics import EVENTS, TopicNames
from ledger.commands import Command, CommandMeta, FailMission
from ledger.log_reader import partition_ends
from ledger.wire import LedgerWire

STEPS = (100_000, 500_000, 1_000_000)
EVENTS_PER_MISSION = 11  # ten commands' events and the colony's rejected StartPlanning
COLONY_OFFSETS = """
SELECT coalesce(sum(next_offset), 0) FROM projector_offsets
WHERE projector = 'colony:velocity-colony' AND topic = $1
"""
REACTED = """
SELECT 1 FROM ledger_events
WHERE mission_id = $1 AND event_type IN ('PlanningStarted', 'MissionQueued')
"""


def soak_mission(mission_id: str, now: datetime) -> list[Command]:
    """A request, eight budget records, then its failure."""
    commands = mission_commands(mission_id, 9, now)
    meta = commands[0].meta.model_dump() | {"command_id": f"{mission_id}/end"}
    return [*commands, Command(meta=CommandMeta(**meta), body=FailMission(reason="soak"))]


async def produce(bootstrap: str, names: TopicNames, missions: int) -> None:
    """`missions` more missions' commands."""
    now = datetime.now(UTC)
    await produce_commands(
        bootstrap, names.commands, (soak_mission(str(uuid.uuid4()), now) for _ in range(missions))
    )


async def events_end(bootstrap: str, names: TopicNames) -> int:
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await reader.start()
    try:
        tps = [TopicPartition(names.events, p) for p in range(EVENTS.partitions)]
        return sum((await partition_ends(reader, tps)).values())
    finally:
        await reader.stop()


async def caught_up(bootstrap: str, names: TopicNames, database_url: str) -> int:
    """Wait until the colony has stored offsets at the end of the events topic, and the
    end has stopped moving (the decider has decided the colony's commands); the end."""
    connection = await asyncpg.connect(database_url)
    try:
        last = -1
        while True:
            end = await events_end(bootstrap, names)
            stored = await connection.fetchval(COLONY_OFFSETS, names.events)
            if stored >= end == last:
                return end
            last = end
            await asyncio.sleep(1.0)
    finally:
        await connection.close()


async def reacting_after(
    bootstrap: str, names: TopicNames, database_url: str, started: float
) -> float:
    """Request a new mission; seconds from `started` until the colony starts planning it."""
    connection = await asyncpg.connect(database_url)
    mission_id = str(uuid.uuid4())
    wire = LedgerWire()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        request = soak_mission(mission_id, datetime.now(UTC))[0]
        encoded = wire.encode_command(request)
        await producer.send_and_wait(
            names.commands, encoded.value, encoded.key, headers=encoded.headers
        )
        while True:
            if await connection.fetchval(REACTED, mission_id):
                return time.perf_counter() - started
            await asyncio.sleep(0.1)
    finally:
        await producer.stop()
        await connection.close()


def colony_pid(stack: BenchStack) -> int:
    colony = stack.supervisor.service("colony")
    assert colony.process is not None, "the colony is not running"
    return colony.process.pid


def restart_colony(stack: BenchStack) -> float:
    """Stop the colony and start it again; when the new process started."""
    supervisor = stack.supervisor
    colony = supervisor.service("colony")
    colony.stop()
    started = time.perf_counter()
    colony.start(supervisor.env, supervisor.log_dir)
    return started


def soak(bootstrap: str, stack: BenchStack, steps: list[int]) -> None:
    names = TopicNames(stack.prefix)
    print(f"{'events':>10}{'RSS MB':>9}{'vs first':>10}{'took s':>9}", flush=True)
    end, first = 0, None
    for step in steps:
        started = time.perf_counter()
        while end < step:
            missions = (step - end) // EVENTS_PER_MISSION + 1
            asyncio.run(produce(bootstrap, names, missions))
            end = asyncio.run(caught_up(bootstrap, names, stack.database_url))
        time.sleep(SETTLE_S)  # the caches settle, and freed memory is released once
        rss = rss_mb(colony_pid(stack))
        first = first or rss
        took = time.perf_counter() - started
        print(f"{end:>10,}{rss:>9.0f}{rss / first:>10.2f}{took:>9.0f}", flush=True)
        record(f"colony_rss_{step // 1000}k", rss, "MB", first)
    started = restart_colony(stack)
    took = asyncio.run(reacting_after(bootstrap, names, stack.database_url, started))
    print(f"restart with {end:,} events in the log: reacting to a new mission in {took:.1f}s")
    record("colony_restart_s", took, "s")


def main() -> None:
    target = int(sys.argv[1]) if len(sys.argv) > 1 else STEPS[-1]
    steps = [s for s in STEPS if s < target] + [target]
    with embedded_infrastructure() as infra, running_stack(infra) as stack:
        soak(infra.bootstrap_servers, stack, steps)


if __name__ == "__main__":
    main()
