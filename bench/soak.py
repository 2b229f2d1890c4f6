"""bench/soak: the decider's resident memory as its log grows to a million events, and
how long a restart takes at the end, after a clean stop and after a kill -9 (snapshots:
ledger/snapshots.py; taking the partitions back: infra/group_takeover.py).

A real decider process (`python -m ledger.decider`) decides missions of ten commands
each (a request, nine budget uses), produced in steps; after each step, once the
decider has committed every command and released the memory it freed (SETTLE_S), its RSS
is read from /proc. With snapshots the
resident memory should stay flat (the saved states beyond DECIDER_CACHE_MISSIONS per
partition leave memory; the default bound, 1,000, is reached by the first step: 10,000
missions over six partitions); a restart folds snapshot + tail. Run with `make bench-soak`
(or `python -m bench.soak [EVENTS]`, default 1,000,000).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.common import (
    embedded_infrastructure,
    fresh_topics,
    mission_commands,
    new_database,
    produce_commands,
)
from bench.results import record
from infra.freed_memory import RELEASE_EVERY_S
from infra.processes import child_environment, spawn, stop
from infra.topics import COMMANDS, TopicNames
from ledger.decider import Decider
from ledger.settings import DeciderSettings
from ledger.snapshots import SnapshotStore

COMMANDS_PER_MISSION = 10
STEPS = (100_000, 500_000, 1_000_000)


SETTLE_S = RELEASE_EVERY_S + 3
"""How long after a step its RSS is read: past one of the service's periodic releases of
freed memory (infra/freed_memory.py), so the figure is what the service holds, not what
the step's burst left behind for the next release. Read 3 s after a step, the decider's
figure at 500k and 1M events moved from 0.96 to 1.17 of the first step, run to run, on
this session's code and on the previous one alike, by where the 20 s release fell; read
past a release it was 1.01 and 1.01 in two runs."""


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


async def produce(bootstrap: str, names: TopicNames, count: int) -> None:
    """`count` more commands, whole missions."""
    now = datetime.now(UTC)
    missions = (
        mission_commands(str(uuid.uuid4()), COMMANDS_PER_MISSION, now)
        for _ in range(count // COMMANDS_PER_MISSION)
    )
    await produce_commands(bootstrap, names.commands, missions)


async def decided(bootstrap: str, names: TopicNames, group: str) -> int:
    """Commands the decider group has committed, over all partitions."""
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await reader.start()
    try:
        tps = [TopicPartition(names.commands, p) for p in range(COMMANDS.partitions)]
        return sum([await reader.committed(tp) or 0 for tp in tps])
    finally:
        await reader.stop()


async def until_decided(bootstrap: str, names: TopicNames, group: str, total: int) -> float:
    """Seconds until the decider group has committed `total` commands."""
    started = time.perf_counter()
    while True:
        if await decided(bootstrap, names, group) >= total:
            return time.perf_counter() - started
        await asyncio.sleep(0.5)


async def rebuild_all(bootstrap: str, database_url: str, names: TopicNames) -> float:
    """Seconds a decider takes to rebuild all its partitions, as at a restart."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    settings = DeciderSettings(KAFKA_TOPIC_PREFIX=names.prefix, LOG_LEVEL="WARNING")
    decider = Decider(settings, bootstrap, SnapshotStore(pool))
    started = time.perf_counter()
    try:
        await asyncio.gather(*(decider.rebuild(p) for p in range(COMMANDS.partitions)))
        return time.perf_counter() - started
    finally:
        await decider.producer.stop()  # built, never started: closed so they leave quietly
        await decider.consumer.stop()
        await pool.close()


def deciding_again(
    env: dict[str, str], bootstrap: str, names: TopicNames, group: str, produced: int
) -> tuple[subprocess.Popen[bytes], float]:
    """A new decider process, and the seconds from its spawn until it has decided one more
    mission's commands (its start, its group join and its rebuild from snapshots)."""
    started = time.perf_counter()
    decider = spawn([sys.executable, "-m", "ledger.decider"], env=env)
    asyncio.run(produce(bootstrap, names, COMMANDS_PER_MISSION))
    asyncio.run(until_decided(bootstrap, names, group, produced + COMMANDS_PER_MISSION))
    return decider, time.perf_counter() - started


def main() -> None:
    target = int(sys.argv[1]) if len(sys.argv) > 1 else STEPS[-1]
    steps = [s for s in STEPS if s < target] + [target]
    with embedded_infrastructure() as infra:
        names = asyncio.run(fresh_topics(infra.bootstrap_servers))
        database_url = asyncio.run(new_database(infra.database_url))
        group = f"soak-{uuid.uuid4().hex[:6]}"
        env = child_environment(
            KAFKA_BOOTSTRAP_SERVERS=infra.bootstrap_servers,
            DATABASE_URL=database_url,
            KAFKA_TOPIC_PREFIX=names.prefix,
            DECIDER_GROUP_ID=group,
            LOG_LEVEL="WARNING",
        )
        decider = spawn([sys.executable, "-m", "ledger.decider"], env=env)
        try:
            produced = 0
            print(f"{'commands':>10}{'RSS MB':>9}{'vs first':>10}{'decide s':>10}", flush=True)
            first = None
            for step in steps:
                asyncio.run(produce(infra.bootstrap_servers, names, step - produced))
                produced = step
                took = asyncio.run(until_decided(infra.bootstrap_servers, names, group, step))
                time.sleep(SETTLE_S)
                rss = rss_mb(decider.pid)
                first = first or rss
                print(f"{step:>10,}{rss:>9.0f}{rss / first:>10.2f}{took:>10.1f}", flush=True)
                record(f"decider_rss_{step // 1000}k", rss, "MB", first)
            stop(decider)
            rebuild_s = asyncio.run(rebuild_all(infra.bootstrap_servers, database_url, names))
            print(f"rebuild of every partition from its snapshot mark: {rebuild_s:.2f}s")
            record("decider_rebuild_from_snapshots_s", rebuild_s, "s")
            bootstrap = infra.bootstrap_servers
            decider, restart_s = deciding_again(env, bootstrap, names, group, produced)
            print(
                f"restart with {produced:,} commands in the log: deciding again in {restart_s:.1f}s"
            )
            produced += COMMANDS_PER_MISSION
            record("decider_restart_s", restart_s, "s")
            time.sleep(3)  # a heartbeat carrying its group membership (infra/group_takeover.py)
            decider.kill()
            decider.wait()
            decider, crash_s = deciding_again(env, bootstrap, names, group, produced)
            print(f"restart after a kill -9: deciding again in {crash_s:.1f}s")
            record("decider_crash_restart_s", crash_s, "s")
        finally:
            stop(decider)


if __name__ == "__main__":
    main()
