"""Metrics from colony.metrics land once in metric_samples and count once into the
Prometheus families the root exposes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from infra.broker import start_broker
from infra.topics import TopicNames
from ledger.codec import AvroCodec
from ledger.dead_letters import DeadLetters
from ledger.metrics import Metric, MetricName, MetricWire
from projections import metric_retention
from projections.batch import BatchApplier
from projections.feeds import metrics_feed
from projections.metric_aggregates import OVERFLOW, SECONDS_BUCKETS, SeriesLimits
from projections.metric_retention import prune_samples
from projections.projector import Projector
from projections.settings import ProjectorSettings
from tests.conftest import Isolated
from tests.integration.conftest import (
    dead_letters,
    eventually,
    ledger_services,
    prepared,
    root_api,
)

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
    feed = metrics_feed(settings.series_limits)
    projector = Projector(settings, isolated.bootstrap_servers, pool, feed)
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
    counter = 'velocity_provider_calls_total{operation="complete"'
    assert f'{counter},outcome="ok",provider="openai"}} 3.0' in text, "a re-sent one counts once"
    assert f'{counter},outcome="timeout",provider="openai"}} 1.0' in text
    latency = "velocity_provider_call_duration_seconds"
    where = 'operation="complete",provider="openai"'
    assert f"{latency}_count{{{where}}} 4.0" in text
    assert f'{latency}_bucket{{le="0.25",{where}}} 3.0' in text
    assert f'{latency}_bucket{{le="+Inf",{where}}} 4.0' in text
    assert f"{latency}_sum{{{where}}} 5.36" in text


async def _calls(pool: asyncpg.Pool, query: str) -> list[asyncpg.Record]:
    return list(await pool.fetch(query))


async def test_after_the_broker_comes_back_empty_metrics_are_read_again_not_skipped(
    isolated: Isolated,
) -> None:
    await prepared(isolated)
    wire = MetricWire()
    topic = TopicNames(isolated.topic_prefix).metrics
    await send_metrics(
        isolated.bootstrap_servers,
        topic,
        [wire.encode(provider_call("a", "ok", 1.0)) for _ in range(3)],
    )
    async with ledger_services(isolated, with_decider=False):
        await eventually(lambda: _count(isolated.database_url, 3))
    fresh = await asyncio.to_thread(start_broker)  # memory only: the embedded broker restarted
    try:
        emptied = Isolated(fresh.bootstrap_servers, isolated.database_url, isolated.topic_prefix)
        await prepared(emptied)
        later = [wire.encode(provider_call("b", "ok", 2.0)) for _ in range(2)]
        await send_metrics(fresh.bootstrap_servers, topic, later)
        async with ledger_services(emptied, with_decider=False):
            await eventually(lambda: _count(isolated.database_url, 5))
    finally:
        fresh.stop()


async def send_metrics(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, partition=0)
    finally:
        await producer.stop()


async def _count(database_url: str, at_least: int) -> bool:
    connection = await asyncpg.connect(database_url)
    try:
        return int(await connection.fetchval("SELECT count(*) FROM metric_samples")) >= at_least
    finally:
        await connection.close()


def sample(name: MetricName, value: float, labels: dict[str, str], metric_id: str = "") -> Metric:
    return Metric(
        metric_id=metric_id or str(uuid.uuid4()),
        name=name,
        value=value,
        labels=labels,
        recorded_at=datetime.now(UTC),
    )


async def test_a_batch_counts_each_new_sample_once_whatever_repeats_within_and_across_batches(
    isolated: Isolated,
) -> None:
    """Samples are counted a batch at a time (one statement): a sample stored by an
    earlier batch, and one sent twice within a batch, count once; counters and histograms
    add up across batches, each sample in its bucket."""
    await prepared(isolated)
    ok = {"provider": "openai", "operation": "complete", "outcome": "ok"}
    first = sample("provider_call", 120.0, ok)
    decision = sample("policy_decision", 1.0, {"rule_id": "r1", "decision": "allowed"})
    fast = sample("provider_call", 30.0, ok)
    stage = sample("stage_latency", 2500.0, {"mission_type": "oracle", "stage": "tasks"})
    batches = [
        [first, sample("provider_call", 5000.0, ok | {"outcome": "timeout"}), decision],
        [first, fast, fast, stage, decision],
    ]
    pool = await asyncpg.create_pool(isolated.database_url, min_size=1, max_size=2)
    try:
        async with metrics_applier(isolated, pool) as applier:
            for batch in batches:
                await applier.apply_fetch(await as_fetch(isolated, batch))
        samples = await pool.fetchval("SELECT count(*) FROM metric_samples")
        counters = {
            (row["family"], row["labels"]): row["value"]
            for row in await pool.fetch("SELECT family, labels::text, value FROM metric_counters")
        }
        histograms = {
            row["family"]: row
            for row in await pool.fetch(
                "SELECT family, bucket_counts, count, sum FROM metric_histograms"
            )
        }
    finally:
        await pool.close()
    assert samples == 5
    calls = "velocity_provider_calls"
    assert (
        counters[(calls, '{"outcome": "ok", "provider": "openai", "operation": "complete"}')] == 2
    )
    assert sum(v for (family, _), v in counters.items() if family == calls) == 3
    assert sum(v for (f, _), v in counters.items() if f == "velocity_policy_decisions") == 1
    latency = histograms["velocity_provider_call_duration_seconds"]
    assert latency["count"] == 3 and latency["sum"] == pytest.approx(5.15)
    counts = latency["bucket_counts"]
    assert [counts[SECONDS_BUCKETS.index(b)] for b in (0.05, 0.25, 5.0)] == [1, 1, 1]
    assert sum(counts) == 3
    stages = histograms["velocity_stage_duration_seconds"]
    assert stages["count"] == 1 and stages["bucket_counts"][SECONDS_BUCKETS.index(2.5)] == 1


@asynccontextmanager
async def metrics_applier(
    slice_: Isolated, pool: asyncpg.Pool, limits: SeriesLimits | None = None
) -> AsyncIterator[BatchApplier[Metric]]:
    producer = AIOKafkaProducer(bootstrap_servers=slice_.bootstrap_servers)
    await producer.start()
    letters = TopicNames(slice_.topic_prefix).dead_letters
    feed = metrics_feed(limits or SeriesLimits())
    try:
        yield BatchApplier(pool, feed, DeadLetters(producer, letters, AvroCodec(), "t"))
    finally:
        await producer.stop()


async def as_fetch(
    slice_: Isolated, metrics: list[Metric]
) -> dict[TopicPartition, list[ConsumerRecord]]:
    """`metrics` appended to partition 0 of the metrics topic, read back as one fetch."""
    wire = MetricWire()
    topic = TopicNames(slice_.topic_prefix).metrics
    producer = AIOKafkaProducer(bootstrap_servers=slice_.bootstrap_servers, acks="all")
    await producer.start()
    try:
        sent = [await producer.send_and_wait(topic, wire.encode(m), partition=0) for m in metrics]
    finally:
        await producer.stop()
    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=slice_.bootstrap_servers)
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        consumer.assign([tp])
        consumer.seek(tp, sent[0].offset)
        while len(records) < len(metrics):
            records += (await consumer.getmany(tp, timeout_ms=1_000)).get(tp, [])
    finally:
        await consumer.stop()
    return {tp: records[: len(metrics)]}


async def test_a_sample_the_database_refuses_is_parked_and_the_rest_of_its_batch_counted(
    isolated: Isolated,
) -> None:
    """A batch is one statement; a sample PostgreSQL cannot store (a NUL in a label, which
    jsonb refuses) fails it, so the batch is applied again sample by sample: that one is
    parked under its metric id, the others are stored and counted once."""
    await prepared(isolated)
    ok = {"provider": "openai", "operation": "complete", "outcome": "ok"}
    poisoned = sample("provider_call", 10.0, ok | {"provider": "open\x00ai"})
    batch = [sample("provider_call", 10.0, ok), poisoned, sample("provider_call", 20.0, ok)]
    pool = await asyncpg.create_pool(isolated.database_url, min_size=1, max_size=2)
    try:
        async with metrics_applier(isolated, pool) as applier:
            await applier.apply_fetch(await as_fetch(isolated, batch))
        stored = [
            row["metric_id"] for row in await pool.fetch("SELECT metric_id FROM metric_samples")
        ]
        parked = await pool.fetch("SELECT projection, parking_key FROM projection_parked")
        calls = await pool.fetchval("SELECT sum(value) FROM metric_counters")
        latency = await pool.fetchrow("SELECT count, sum FROM metric_histograms")
    finally:
        await pool.close()
    assert sorted(stored) == sorted([batch[0].metric_id, batch[2].metric_id])
    assert [(p["projection"], p["parking_key"]) for p in parked] == [
        ("metric_samples", poisoned.metric_id)
    ]
    assert calls == 2
    assert latency is not None and latency["count"] == 2 and latency["sum"] == pytest.approx(0.03)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
async def test_a_sample_of_no_finite_value_is_dead_lettered_and_leaves_the_sums_finite(
    isolated: Isolated, value: float
) -> None:
    """A NaN or infinite value (a plain Kafka client can write one; Avro's double carries
    it) once added to a histogram's sum would leave that sum NaN or infinite on /metrics
    for good: such a record is set aside as an invalid metric, the rest counted."""
    await prepared(isolated)
    ok = {"provider": "openai", "operation": "complete", "outcome": "ok"}
    unbounded = Metric.model_construct(
        metric_id=str(uuid.uuid4()),
        name="provider_call",
        value=value,
        labels=ok,
        recorded_at=datetime.now(UTC),
    )
    batch = [sample("provider_call", 10.0, ok), unbounded, sample("provider_call", 20.0, ok)]
    pool = await asyncpg.create_pool(isolated.database_url, min_size=1, max_size=2)
    try:
        async with metrics_applier(isolated, pool) as applier:
            await applier.apply_fetch(await as_fetch(isolated, batch))
        latency = await pool.fetchrow("SELECT count, sum FROM metric_histograms")
        stored = await pool.fetchval("SELECT count(*) FROM metric_samples")
    finally:
        await pool.close()
    assert latency is not None and latency["count"] == 2 and latency["sum"] == pytest.approx(0.03)
    assert stored == 2
    letters = await dead_letters(isolated)
    assert [letter["reason"] for letter in letters] == ["invalid_metric"]
    assert "value" in letters[0]["detail"] and "finite" in letters[0]["detail"]


async def test_label_combinations_beyond_the_limit_count_in_the_familys_overflow_series(
    isolated: Isolated,
) -> None:
    """A producer inventing label values (a forged provider name a sample) would grow the
    counter and histogram tables, and every scrape of /metrics, without end: a counter
    family keeps METRICS_MAX_COUNTER_SERIES combinations (here 3), a histogram family
    METRICS_MAX_HISTOGRAM_SERIES (here 2), first come first kept, and each counts the
    samples of any other in its overflow series, so totals stay right. Kept combinations go
    on counting; within one batch only as many newcomers are kept as places are left."""
    await prepared(isolated)

    def call(provider: str) -> Metric:
        labels = {"provider": provider, "operation": "complete", "outcome": "ok"}
        return sample("provider_call", 100.0, labels)

    batches = [
        [call("p0"), call("p1")],
        [call("p0"), call("p2"), call("p3"), call("p4"), call("p2")],
        [call("p5"), sample("policy_decision", 1.0, {"rule_id": "r1", "decision": "allowed"})],
    ]
    pool = await asyncpg.create_pool(isolated.database_url, min_size=1, max_size=2)
    try:
        async with metrics_applier(
            isolated, pool, SeriesLimits(counters=3, histograms=2)
        ) as applier:
            for batch in batches:
                await applier.apply_fetch(await as_fetch(isolated, batch))
        counters = await pool.fetch("SELECT family, labels::text, value FROM metric_counters")
        histograms = await pool.fetch("SELECT family, labels::text, count FROM metric_histograms")
    finally:
        await pool.close()
    calls = {r["labels"]: r["value"] for r in counters if r["family"] == "velocity_provider_calls"}
    overflow = f'{{"outcome": "{OVERFLOW}", "provider": "{OVERFLOW}", "operation": "{OVERFLOW}"}}'
    kept = '{{"outcome": "ok", "provider": "{}", "operation": "complete"}}'
    assert calls == {kept.format("p0"): 2, kept.format("p1"): 1, kept.format("p2"): 2, overflow: 3}
    latency = {r["labels"]: r["count"] for r in histograms}
    assert len(latency) == 3 and sum(latency.values()) == 8
    assert latency[f'{{"provider": "{OVERFLOW}", "operation": "{OVERFLOW}"}}'] == 5
    policy = [r for r in counters if r["family"] == "velocity_policy_decisions"]
    assert [r["value"] for r in policy] == [1], "each family has places of its own"
    async with root_api(isolated) as client:
        text = (await client.get("/metrics")).text
    where = f'operation="{OVERFLOW}",outcome="{OVERFLOW}",provider="{OVERFLOW}"'
    assert f"velocity_provider_calls_total{{{where}}} 3.0" in text
    assert 'provider="p4"' not in text and 'provider="p5"' not in text
    overflowed = "velocity_metric_overflowed_samples_total"
    assert f'{overflowed}{{family="velocity_provider_calls"}} 3.0' in text
    assert f'{overflowed}{{family="velocity_provider_call_duration_seconds"}} 5.0' in text
    assert 'family="velocity_policy_decisions"' not in text


async def test_provider_health_reads_the_latest_ten_thousand_calls_and_the_busiest_providers(
    isolated: Isolated,
) -> None:
    """The console's provider health costs the same however busy the hour was: it reads at
    most the newest 10,000 provider calls of the hour (an hour of every call took 180 ms a
    page at 300,000 calls) and lists the 50 busiest providers, not every name a producer
    invented."""
    await prepared(isolated)
    connection = await asyncpg.connect(isolated.database_url)
    try:
        await connection.execute(
            """INSERT INTO metric_samples (metric_id, name, value, labels, recorded_at)
            SELECT 'call-' || g, 'provider_call', 10,
                   jsonb_build_object('provider', CASE WHEN g <= 100 THEN 'old' WHEN g <= 9900
                       THEN 'local' ELSE 'forged-' || g END, 'outcome', 'ok'),
                   now() - interval '30 minutes' + g * interval '1 millisecond'
            FROM generate_series(1, 10100) AS g"""
        )
        rows = await connection.fetch("SELECT provider, calls FROM provider_health")
    finally:
        await connection.close()
    assert len(rows) == 50
    assert (rows[0]["provider"], rows[0]["calls"]) == ("local", 9800)
    assert "old" not in {row["provider"] for row in rows}, "older than the newest 10,000"
    assert sum(row["calls"] for row in rows) == 9800 + 49


async def test_samples_past_their_retention_are_deleted_and_what_they_counted_stays(
    isolated: Isolated, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sample's row is kept METRICS_SAMPLE_RETENTION_DAYS (ten rows a mission would grow
    the database forever); pruning deletes older ones in slices (here of one row, so the
    slicing is exercised) and leaves the counters and histograms they fed as they were."""
    await prepared(isolated)
    monkeypatch.setattr(metric_retention, "SLICE", 1)
    ok = {"provider": "openai", "operation": "complete", "outcome": "ok"}
    long_ago = datetime.now(UTC) - timedelta(days=9)
    old = [
        sample("provider_call", 10.0, ok).model_copy(update={"recorded_at": long_ago})
        for _ in range(3)
    ]
    recent = sample("provider_call", 20.0, ok)
    pool = await asyncpg.create_pool(isolated.database_url, min_size=1, max_size=2)
    try:
        async with metrics_applier(isolated, pool) as applier:
            await applier.apply_fetch(await as_fetch(isolated, [*old, recent]))
        deleted = await prune_samples(pool, days=8)
        kept = [
            row["metric_id"] for row in await pool.fetch("SELECT metric_id FROM metric_samples")
        ]
        calls = await pool.fetchval("SELECT sum(value) FROM metric_counters")
        latency = await pool.fetchval("SELECT count FROM metric_histograms")
        again = await prune_samples(pool, days=8)
    finally:
        await pool.close()
    assert deleted == 3 and kept == [recent.metric_id] and again == 0
    assert calls == 4 and latency == 4
