"""bench/colony: Oracle missions completed per second with local providers, and p50/p99
mission latency (request to completed), at 1, 10 and 100 concurrent missions, with the
time spent in each stage (from the ledger); then 100 missions at once against a fake
OpenAI-compatible model (on 127.0.0.1) that answers in 2 s, as real ones do. At 100
concurrent it prints the CPU a mission costs in each process (bench/cpu.py). Run with
`make bench` or `python -m bench.colony`.

The bench shares the two cores with the stack it measures, so it costs them little: its
requests go over keep-alive sockets (bench/http_load.py), on uvloop as the services run,
and it learns when missions end from the projector's commit notifications.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import sys
import time

import asyncpg
import uvloop

from bench.common import embedded_infrastructure, running_stack
from bench.cpu import CpuMeter
from bench.http_load import KeepAlive
from bench.results import record
from projections.archive import PROJECTED_CHANNEL
from tests.fake_services import FakeModel

ORACLE = {
    "type": "oracle",
    "mode": "assisted",
    "objective": "Atlas delivery risk?",
    "project_id": "atlas",
}


ENDED = (
    "SELECT mission_id, status FROM missions WHERE mission_id = ANY($1::text[])"
    " AND status IN ('completed', 'failed')"
)
SAFETY_NET_S = 0.5
"""How long the bench waits for a notification before asking anyway (the projector sends
one at every commit; this only bounds a stall)."""


class Finishes:
    """When missions end, seen from PostgreSQL: the bench LISTENs on the projector's
    commit notification and, after each (at most one query at a time, all waiting
    missions in it), asks which missions ended. Polling every 50 ms instead added up to
    50 ms to every latency measured (a fifth of a lone mission's) and a query a poll
    whether anything was projected or not; a client polling each mission over HTTP would
    load the root more than the colony does."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.waiting: dict[str, asyncio.Future[None]] = {}
        self.projected = asyncio.Event()

    async def watch(self, stop: asyncio.Event) -> None:
        connection = await asyncpg.connect(self.database_url)
        await connection.add_listener(PROJECTED_CHANNEL, lambda *_: self.projected.set())
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.projected.wait(), SAFETY_NET_S)
                self.projected.clear()
                if self.waiting:
                    self.settle(await connection.fetch(ENDED, list(self.waiting)))
        finally:
            await connection.close()

    def settle(self, rows: list[asyncpg.Record]) -> None:
        for row in rows:
            done = self.waiting.pop(row["mission_id"])
            if row["status"] == "failed":
                done.set_exception(RuntimeError(f"mission {row['mission_id']} failed"))
            else:
                done.set_result(None)

    async def one_mission(self, client: KeepAlive) -> float:
        """Open an Oracle mission and wait until it completes; ms from request to end."""
        started = time.perf_counter()
        status, body = await client.send(client.request("POST", "/missions", ORACLE))
        assert status < 300, body[:500]
        mission_id = json.loads(body)["mission_id"]
        done = self.waiting[mission_id] = asyncio.get_running_loop().create_future()
        await done
        return (time.perf_counter() - started) * 1000


async def level(
    client: KeepAlive, database_url: str, concurrency: int, missions: int
) -> list[float]:
    """Run `missions` with `concurrency` at a time; print the rate and latency cuts (ms)
    and return them, rate first."""
    finishes = Finishes(database_url)
    stop = asyncio.Event()
    watcher = asyncio.create_task(finishes.watch(stop))
    queue = list(range(missions))
    latencies: list[float] = []

    async def worker() -> None:
        while queue:
            queue.pop()
            latencies.append(await finishes.one_mission(client))

    started = time.perf_counter()
    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        stop.set()
        await watcher
    elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    print(
        f"{concurrency:>4} concurrent: {missions / elapsed:6.1f} missions/s"
        f"   p50 {cuts[49]:7.0f} ms   p99 {cuts[98]:7.0f} ms   (n={missions})"
    )
    return [missions / elapsed, *cuts]


TASK_TIMES = """
SELECT kind,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS work_ms,
       percentile_cont(0.5) WITHIN GROUP (
           ORDER BY extract(epoch FROM finished_at - started_at) * 1000) AS recorded_ms
FROM tasks WHERE status = 'succeeded' GROUP BY kind ORDER BY kind
"""


async def stages(database_url: str) -> None:
    """Where the time goes: each stage (from the ledger), and within the tasks stage each
    task's own work (as the colony timed it) beside its start-to-result time in the ledger."""
    connection = await asyncpg.connect(database_url)
    rows = await connection.fetch("SELECT * FROM stage_latency ORDER BY stage")
    tasks = await connection.fetch(TASK_TIMES)
    await connection.close()
    for row in rows:
        print(
            f"  stage {row['stage']:<8} p50 {row['p50_ms']:7.0f} ms   p99 {row['p99_ms']:7.0f} ms"
        )
    for task in tasks:
        print(
            f"    task {task['kind']:<15} work p50 {task['work_ms']:7.0f} ms"
            f"   started→result p50 {task['recorded_ms']:7.0f} ms"
        )


AUTH = {"Authorization": "Bearer local-service-key"}


async def measure(
    root: str, database_url: str, sizes: list[tuple[int, int]], cpu: CpuMeter
) -> None:
    client = KeepAlive(root, AUTH)
    try:
        for concurrency, missions in sizes:
            cpu.start()
            rate, *cuts = await level(client, database_url, concurrency, missions)
            cpu.stop()
            if concurrency == 100:
                record("colony_p50_100_concurrent", cuts[49], "ms")
                record("colony_missions_per_s_100_concurrent", rate, "missions/s")
                cpu_per_mission(cpu.per_unit_ms(missions))
    finally:
        await client.close()
    print("time in each stage (all runs):")
    await stages(database_url)


def cpu_per_mission(by_process: dict[str, float]) -> None:
    """Print and record the CPU a mission costs, by process. 100 missions in flight with
    a median under 1 s need ~100 missions/s (Little's law): on two cores, at most ~20 ms
    of CPU per mission over every process."""
    total = sum(by_process.values())
    print(f"CPU per mission at 100 concurrent: {total:.1f} ms (goal's budget: ~20 ms)")
    for name, ms in sorted(by_process.items(), key=lambda item: -item[1]):
        print(f"  {name:<10} {ms:6.1f} ms")
    record("colony_cpu_ms_per_mission", total, "ms")


async def measure_slow_model(root: str, database_url: str, model: FakeModel) -> None:
    """100 Oracle missions submitted at once against a model answering in 2 s."""
    await model.start()
    try:
        client = KeepAlive(root, AUTH)
        print(f"model answering in {model.delay_s:.0f} s, 100 missions submitted at once:")
        _, *cuts = await level(client, database_url, 100, 100)
        await client.close()
        record("colony_p50_100_slow_model", cuts[49], "ms")
        print("time in each stage:")
        await stages(database_url)
    finally:
        await model.stop()


def main() -> None:
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    sizes = [(1, max(int(10 * scale), 2)), (10, int(50 * scale)), (100, int(200 * scale))]
    with (
        embedded_infrastructure() as infra,
        running_stack(infra, MAX_CONCURRENT_MISSIONS="100") as stack,
    ):
        cpu = CpuMeter(stack.pids(infra) | {"bench": os.getpid()})
        uvloop.run(measure(stack.root, stack.database_url, sizes, cpu))
    model = FakeModel(delay_s=2.0)
    with (
        embedded_infrastructure() as infra,
        running_stack(infra, MAX_CONCURRENT_MISSIONS="100", DEFAULT_MODEL_ROUTE=model.url) as (
            root,
            database_url,
            *_,
        ),
    ):
        uvloop.run(measure_slow_model(root, database_url, model))


if __name__ == "__main__":
    main()
