"""Metrics from colony.metrics land once in metric_samples and feed the rollups and /metrics."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from infra.topics import TopicNames
from ledger.metrics import Metric, MetricWire
from projections.projector import Projector, metrics_feed
from projections.settings import ProjectorSettings
from tests.conftest import Isolated
from tests.integration.conftest import dead_letters, eventually, prepared, root_api

pytestmark = pytest.mark.integration


def provider_call(provider: str, outcome: str, latency_ms: float) -> Metric:
    return Metric(
        metric_id=str(uuid.uuid4()),
        name="provider_call",
        value=latency_ms,
        labels={"provider": provider, "outcome": outcome, "operation": "complete"},
        recorded_at=datetime.now(UTC),
    )


async def test_provider_calls_become_health_rollups_once(isolated: Isolated) -> None:
    await prepared(isolated)
    calls = [provider_call("openai", "ok", 120.0) for _ in range(3)]
    calls.append(provider_call("openai", "timeout", 5000.0))
    wire = MetricWire()
    topic = TopicNames(isolated.topic_prefix).metrics
    producer = AIOKafkaProducer(bootstrap_servers=isolated.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for metric in [*calls, calls[0]]:  # the first one re-sent
            await producer.send_and_wait(topic, wire.encode(metric))
        await producer.send_and_wait(topic, b"not a metric")
    finally:
        await producer.stop()
    pool = await asyncpg.create_pool(isolated.database_url, min_size=1, max_size=2)
    settings = ProjectorSettings(
        KAFKA_TOPIC_PREFIX=isolated.topic_prefix, PROJECTOR_GROUP_ID=f"m-{uuid.uuid4().hex[:6]}"
    )
    projector = Projector(settings, isolated.bootstrap_servers, pool, metrics_feed())
    stop = asyncio.Event()
    running = asyncio.create_task(projector.run(stop))
    try:
        health = await eventually(
            lambda: _calls(pool, "SELECT * FROM provider_health WHERE calls >= 4")
        )
        assert await pool.fetchval("SELECT count(*) FROM metric_samples") == 4
    finally:
        stop.set()
        await running
        await pool.close()
    assert health[0]["failures"] == 1
    assert float(health[0]["failure_rate"]) == 0.25
    letters = await eventually(lambda: dead_letters(isolated))
    assert letters[0]["reason"] == "undecodable"
    async with root_api(isolated) as client:
        text = (await client.get("/metrics")).text
    assert 'velocity_provider_failure_rate{provider="openai"} 0.25' in text
    assert 'velocity_provider_calls_last_hour{provider="openai"} 4.0' in text


async def _calls(pool: asyncpg.Pool, query: str) -> list[asyncpg.Record]:
    return list(await pool.fetch(query))
