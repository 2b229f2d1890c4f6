"""bench/colony: Oracle missions completed per second with local providers, and p50/p99
mission latency (request to completed), at 1, 10 and 100 concurrent missions, with the
time spent in each stage (from the ledger); then 100 missions at once against a fake
OpenAI-compatible model (on 127.0.0.1) that answers in 2 s, as real ones do. Run with
`make bench` or `python -m bench.colony`.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

import asyncpg
import httpx

from bench.common import embedded_infrastructure, running_stack
from bench.results import record
from tests.fake_services import FakeModel

ORACLE = {
    "type": "oracle",
    "mode": "assisted",
    "objective": "Atlas delivery risk?",
    "project_id": "atlas",
}


async def one_mission(client: httpx.AsyncClient) -> float:
    started = time.perf_counter()
    mission_id = (await client.post("/missions", json=ORACLE)).json()["mission_id"]
    while True:
        status = (await client.get(f"/missions/{mission_id}")).json().get("status")
        if status in ("completed", "failed"):
            if status == "failed":
                raise RuntimeError(f"mission {mission_id} failed")
            return (time.perf_counter() - started) * 1000
        await asyncio.sleep(0.02)


async def level(client: httpx.AsyncClient, concurrency: int, missions: int) -> list[float]:
    """Run `missions` with `concurrency` at a time; print and return the latency cuts (ms)
    and record the figures of the 100-at-once level."""
    queue = list(range(missions))
    latencies: list[float] = []

    async def worker() -> None:
        while queue:
            queue.pop()
            latencies.append(await one_mission(client))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    print(
        f"{concurrency:>4} concurrent: {missions / elapsed:6.1f} missions/s"
        f"   p50 {cuts[49]:7.0f} ms   p99 {cuts[98]:7.0f} ms   (n={missions})"
    )
    return [missions / elapsed, *cuts]


async def stages(database_url: str) -> None:
    connection = await asyncpg.connect(database_url)
    rows = await connection.fetch("SELECT * FROM stage_latency ORDER BY stage")
    await connection.close()
    for row in rows:
        print(
            f"  stage {row['stage']:<8} p50 {row['p50_ms']:7.0f} ms   p99 {row['p99_ms']:7.0f} ms"
        )


AUTH = {"Authorization": "Bearer local-service-key"}


async def measure(root: str, database_url: str, sizes: list[tuple[int, int]]) -> None:
    async with httpx.AsyncClient(base_url=root, headers=AUTH, timeout=60) as client:
        for concurrency, missions in sizes:
            rate, *cuts = await level(client, concurrency, missions)
            if concurrency == 100:
                record("colony_p50_100_concurrent", cuts[49], "ms")
                record("colony_missions_per_s_100_concurrent", rate, "missions/s")
    print("time in each stage (all runs):")
    await stages(database_url)


async def measure_slow_model(root: str, database_url: str, model: FakeModel) -> None:
    """100 Oracle missions submitted at once against a model answering in 2 s."""
    await model.start()
    try:
        async with httpx.AsyncClient(base_url=root, headers=AUTH, timeout=120) as client:
            print(f"model answering in {model.delay_s:.0f} s, 100 missions submitted at once:")
            _, *cuts = await level(client, 100, 100)
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
        running_stack(infra, MAX_CONCURRENT_MISSIONS="100") as (root, database_url, _),
    ):
        asyncio.run(measure(root, database_url, sizes))
    model = FakeModel(delay_s=2.0)
    with (
        embedded_infrastructure() as infra,
        running_stack(infra, MAX_CONCURRENT_MISSIONS="100", DEFAULT_MODEL_ROUTE=model.url) as (
            root,
            database_url,
            _,
        ),
    ):
        asyncio.run(measure_slow_model(root, database_url, model))


if __name__ == "__main__":
    main()
