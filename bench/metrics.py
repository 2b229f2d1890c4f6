"""bench/metrics: GET /metrics p50/p99 while the metric history grows.

Samples go through the real path (colony.metrics on the broker, the projector counting
each once); /metrics is timed after each step of history. The missions view holds, from
the start, what a ledger of a million events leaves (`FINISHED` missions, a few still
open), written straight into the view: the scrape counts the open ones. The raw path
beside it is the metric families' reads through asyncpg alone. Flat figures mean a
scrape costs the same whatever the history. Run with `make bench-metrics` or
`python -m bench.metrics [samples per step]`.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

from bench.common import embedded_infrastructure, latency_cuts, running_stack
from bench.results import record
from infra.topics import TopicNames
from ledger.metrics import Metric, MetricWire

ROUNDS = 200
FINISHED = 67_000
"""About a million events' worth of missions (an Oracle mission is 15 events)."""
MISSIONS = """
INSERT INTO missions (mission_id, mission_type, mode, environment, objective, status, stage,
                      time_budget_ms, token_budget, requested_by, correlation_id, trace_id,
                      created_at, updated_at, last_sequence, last_hash)
SELECT 'bench-' || g, 'oracle', 'assisted', 'local', 'history',
       CASE WHEN g % 1000 = 0 THEN 'running' ELSE 'completed' END, 'done', 60000, 10000,
       'service:bench', 'bench', 'bench', now(), now(), 15, 'bench'
FROM generate_series(1, $1::int) AS g
"""
STEPS = 3
PROVIDERS = ("local-model", "local-research", "http-model", "crm")
OUTCOMES = ("ok", "ok", "ok", "error", "timeout")


def sample(index: int) -> Metric:
    """A provider call or a stage latency, spread over a few dozen label sets."""
    now = datetime.now(UTC)
    if index % 3:
        labels = {
            "provider": PROVIDERS[index % len(PROVIDERS)],
            "operation": "complete",
            "outcome": OUTCOMES[index % len(OUTCOMES)],
        }
        return Metric(
            metric_id=str(uuid.uuid4()),
            name="provider_call",
            value=float(index % 900),
            labels=labels,
            recorded_at=now,
        )
    stage = ("intake", "planning", "tasks", "review")[index % 4]
    return Metric(
        metric_id=str(uuid.uuid4()),
        name="stage_latency",
        value=float(index % 5000),
        labels={"mission_type": "oracle", "stage": stage},
        recorded_at=now,
    )


async def publish(bootstrap: str, topic: str, start: int, count: int) -> None:
    wire = MetricWire()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        for first in range(start, start + count, 2_000):
            sends = [
                await producer.send(topic, wire.encode(sample(i)))
                for i in range(first, min(first + 2_000, start + count))
            ]
            await asyncio.gather(*sends)
    finally:
        await producer.stop()


async def counted(database_url: str, total: int) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        for _ in range(3_600):
            if await connection.fetchval("SELECT count(*) FROM metric_samples") >= total:
                return
            await asyncio.sleep(0.5)
    finally:
        await connection.close()
    raise TimeoutError("the projector did not count every sample in 30 minutes")


async def quantiles(fetch: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """p50 and p99 in ms of ROUNDS calls."""
    cuts = await latency_cuts(fetch, ROUNDS)
    return cuts[49], cuts[98]


async def measure(root: str, database_url: str, bootstrap: str, prefix: str, per_step: int) -> None:
    topic = TopicNames(prefix).metrics
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    await pool.execute(MISSIONS, FINISHED)
    await pool.execute("ANALYZE missions")
    print(f"{FINISHED:,} missions in the view; {FINISHED // 1000} of them open")
    print(f"{'samples':>10}{'p50 ms':>9}{'p99 ms':>9}{'raw p99':>9}{'ratio':>8}")
    try:
        async with httpx.AsyncClient(base_url=root, timeout=30) as client:

            async def scrape() -> object:
                return (await client.get("/metrics")).text

            async def raw() -> object:
                return (
                    await pool.fetch("SELECT family, labels, value FROM metric_counters"),
                    await pool.fetch(
                        "SELECT family, labels, bucket_counts, sum FROM metric_histograms"
                    ),
                )

            for step in range(STEPS):
                await publish(bootstrap, topic, step * per_step, per_step)
                await counted(database_url, (step + 1) * per_step)
                p50, p99 = await quantiles(scrape)
                raw_p99 = (await quantiles(raw))[1]
                print(
                    f"{(step + 1) * per_step:>10}{p50:9.2f}{p99:9.2f}{raw_p99:9.2f}"
                    f"{p99 / raw_p99:8.1f}",
                    flush=True,
                )
            record("metrics_p99", p99, "ms", raw_p99)
    finally:
        await pool.close()


def main() -> None:
    per_step = int(sys.argv[1]) if len(sys.argv) > 1 else 333_334  # 1M samples at the end
    with (
        embedded_infrastructure() as infra,
        running_stack(infra, COLONY_REACTORS="false") as (root, database_url, prefix, _),
    ):
        print(f"/metrics while colony.metrics grows by {per_step} samples a step")
        asyncio.run(measure(root, database_url, infra.bootstrap_servers, prefix, per_step))


if __name__ == "__main__":
    main()
