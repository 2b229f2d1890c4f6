"""bench/projections: events projected per second vs raw aiokafka consume + asyncpg COPY
(by one projector process, and by two sharing the partitions as replicas do, beside the
raw path in two processes), and the root's p50/p99 latency for POST /missions and
GET /missions/{id} at a fixed rate (with each hop of a synchronous POST,
bench/post_hops.py).

Run with `make bench` (or `python -m bench.projections [EVENTS]`).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from bench.common import (
    BenchInfra,
    BenchStack,
    Stopwatch,
    embedded_infrastructure,
    fresh_topics,
    mission_commands,
    new_database,
    running_stack,
)
from bench.cpu import CpuMeter
from bench.http_load import KeepAlive
from bench.post_hops import report_hops, timed_post
from bench.results import record
from infra.service_runtime import tune_garbage_collector
from infra.topics import EVENTS, TopicNames
from ledger.authority import LOCAL_VERIFY_KEYS, OperatorAuthority
from ledger.codec import schema_codec
from ledger.dead_letters import DeadLetters
from ledger.log_reader import fetches_to_end
from ledger.state import MissionState
from ledger.step import step
from ledger.wire import LedgerWire
from projections.batch import BatchApplier
from projections.feeds import ledger_feed
from projections.pipeline import ApplyPipeline

MISSIONS = 2_000
T = TypeVar("T")


async def fill_events(bootstrap: str, names: TopicNames, total: int) -> int:
    """Decide `total` commands with the pure core and produce their events."""
    wire = LedgerWire()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    now = datetime.now(UTC)
    authority = OperatorAuthority.parse(LOCAL_VERIFY_KEYS)
    sends = []
    try:
        for _ in range(MISSIONS):
            mission_id = str(uuid.uuid4())
            state = MissionState(mission_id=mission_id)
            partition = hash(mission_id) % EVENTS.partitions
            for item in mission_commands(mission_id, total // MISSIONS, now):
                state, events = step(state, item, now, authority)
                for event in events:
                    record = wire.encode_event(event)
                    sends.append(
                        await producer.send(names.events, record.value, record.key, partition)
                    )
        await asyncio.gather(*sends)
    finally:
        await producer.stop()
    return len(sends)


def partitions(names: TopicNames, share: list[int] | None = None) -> list[TopicPartition]:
    """The events topic's partitions, or those in `share`."""
    every = range(EVENTS.partitions)
    return [TopicPartition(names.events, p) for p in every if share is None or p in share]


async def raw_path(
    bootstrap: str, names: TopicNames, database_url: str, share: list[int] | None = None
) -> tuple[float, float]:
    """Consume every event record (of the partitions in `share`) and COPY (partition,
    offset, bytes) rows, one COPY per fetch (as the projector applies one transaction per
    fetch); (wall-clock start, end) in seconds since the epoch."""
    table = "raw_events_" + ("_".join(map(str, share)) if share else "all")
    connection = await asyncpg.connect(database_url)
    await connection.execute(f"CREATE TABLE {table} (p int, o bigint, v bytea)")
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    started = time.time()
    try:
        async for batches in fetches_to_end(consumer, partitions(names, share)):
            rows = [(tp.partition, r.offset, r.value) for tp, rs in batches.items() for r in rs]
            await connection.copy_records_to_table(table, records=rows)
        return started, time.time()
    finally:
        await consumer.stop()
        await connection.close()


Decode = Callable[[ConsumerRecord[bytes, bytes]], object]


def as_projector_does() -> Decode:
    """Avro and the model check, as the projector's ledger feed reads a record."""
    feed = ledger_feed()
    return lambda r: feed.project(r.partition, r.offset, r.value or b"", r.key, r.headers)


def avro_only() -> Decode:
    """The Avro body alone (fastavro), no check: what reading a record's content costs
    at the least in the wire format the ledger uses."""
    codec = schema_codec()
    return lambda r: codec.decode(r.value or b"")


async def decode_path(bootstrap: str, names: TopicNames, decode: Decode) -> float:
    """Consume every event record and `decode` it, nothing written; seconds. No projector
    that reads each record in one process can be faster: this bounds the ratio the
    projector can reach on this machine."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    clock = Stopwatch()
    try:
        async for batches in fetches_to_end(consumer, partitions(names)):
            for records in batches.values():
                for r in records:
                    decode(r)
        return clock.seconds
    finally:
        await consumer.stop()


async def projector_path(
    bootstrap: str, names: TopicNames, database_url: str, share: list[int] | None = None
) -> tuple[float, float]:
    """Every projection over the whole log (or the partitions in `share`), as the projector
    applies it; (wall-clock start, end) in seconds since the epoch."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, max_poll_records=1_000
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await consumer.start()
    await producer.start()
    wire = LedgerWire()
    applier = BatchApplier(
        pool, ledger_feed(), DeadLetters(producer, names.dead_letters, wire.codec, "bench")
    )
    pipeline = ApplyPipeline(applier)
    started = time.time()
    try:
        async for batches in fetches_to_end(consumer, partitions(names, share)):
            await pipeline.push(batches)  # a fetch in one transaction, the next decoded meanwhile
        await pipeline.settle()
        return started, time.time()
    finally:
        await consumer.stop()
        await producer.stop()
        await pool.close()


REPLICAS = 2
PATHS = {"raw": raw_path, "projector": projector_path}


async def replicas_path(path: str, bootstrap: str, names: TopicNames, database_url: str) -> float:
    """PATHS[path] in REPLICAS processes, each with its share of the partitions, into one
    database, as replicas of the projector share them (STACK_REPLICAS); seconds from the
    first one's start to the last one's end. A process's start-up is not counted."""
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.projections",
            "--share",
            path,
            bootstrap,
            names.prefix,
            database_url,
            ",".join(str(p) for p in range(EVENTS.partitions) if p % REPLICAS == index),
            stdout=asyncio.subprocess.PIPE,
        )
        for index in range(REPLICAS)
    ]
    spans: list[tuple[float, float]] = [
        tuple(json.loads((await child.communicate())[0])) for child in children
    ]
    if any(child.returncode for child in children):
        raise SystemExit(f"a {path} replica of the bench failed")
    return max(end for _, end in spans) - min(start for start, _ in spans)


def run_share(path: str, bootstrap: str, prefix: str, database_url: str, share: str) -> None:
    """A child of `replicas_path`: PATHS[path] over the partitions in `share`; its span."""
    tune_garbage_collector()
    names, mine = TopicNames(prefix), [int(p) for p in share.split(",")]
    print(json.dumps(asyncio.run(PATHS[path](bootstrap, names, database_url, mine))))


async def measure_projections(bootstrap: str, admin_url: str, total: int) -> None:
    names = await fresh_topics(bootstrap)
    print(f"filling {total:,} events over {MISSIONS:,} missions …", file=sys.stderr)
    count = await fill_events(bootstrap, names, total)
    raw_start, raw_end = await raw_path(bootstrap, names, await new_database(admin_url))
    decode_s = await decode_path(bootstrap, names, as_projector_does())
    avro_s = await decode_path(bootstrap, names, avro_only())
    started, ended = await projector_path(bootstrap, names, await new_database(admin_url))
    raw_shared_s = await replicas_path("raw", bootstrap, names, await new_database(admin_url))
    shared_s = await replicas_path("projector", bootstrap, names, await new_database(admin_url))
    raw_s, projected_s = raw_end - raw_start, ended - started
    raw_rate, rate, ceiling = count / raw_s, count / projected_s, count / decode_s
    raw_shared, shared_rate = count / raw_shared_s, count / shared_s
    avro_rate = count / avro_s
    print(f"raw aiokafka consume + asyncpg COPY: {raw_rate:>10,.0f} events/s ({raw_s:.1f}s)")
    print(f"consume + decode only (the ceiling): {ceiling:>10,.0f} events/s ({decode_s:.1f}s)")
    print(
        f"consume + Avro alone, no check:      {avro_rate:>10,.0f} events/s"
        f" ({avro_rate / raw_rate:.2f} of raw)"
    )
    print(f"projector (all views + archive):    {rate:>10,.0f} events/s ({projected_s:.1f}s)")
    print(
        f"ratio projector/raw:                {rate / raw_rate:>10.2f} (aim: >= 0.5;"
        f" decoding alone reaches {ceiling / raw_rate:.2f})"
    )
    print(f"raw path, {REPLICAS} processes:            {raw_shared:>10,.0f} events/s")
    print(f"{REPLICAS} projectors sharing partitions:  {shared_rate:>10,.0f} events/s")
    print(
        f"ratio {REPLICAS} projectors/raw:              {shared_rate / raw_rate:>10.2f} (against"
        f" the raw path in {REPLICAS} processes {shared_rate / raw_shared:.2f})"
    )
    record("projector", rate, "events/s", raw_rate)
    record(f"projector_{REPLICAS}_processes", shared_rate, "events/s", raw_rate)
    record(f"raw_consume_copy_{REPLICAS}_processes", raw_shared, "events/s", raw_rate)
    record("projector_decode_ceiling", ceiling, "events/s", raw_rate)
    record("projector_codec_ceiling", avro_rate, "events/s", raw_rate)


async def at_rate(rate: int, seconds: int, call: Callable[[], Coroutine[Any, Any, T]]) -> list[T]:
    """Start `call()` every 1/rate s for `seconds` (open loop), return what each returned."""
    tasks = []
    for _ in range(rate * seconds):
        tasks.append(asyncio.create_task(call()))
        await asyncio.sleep(1 / rate)
    return list(await asyncio.gather(*tasks))


def percentiles(name: str, latencies: list[float]) -> list[float]:
    cuts = statistics.quantiles(latencies, n=100)
    print(f"{name:<24} p50 {cuts[49]:7.1f} ms   p99 {cuts[98]:7.1f} ms   (n={len(latencies)})")
    return cuts


async def measure_gateway(
    infra: BenchInfra, stack: BenchStack, rate: int, seconds: int, cpu: CpuMeter
) -> None:
    """Open-loop load over keep-alive connections (bench/http_load.py: the client costs
    the two cores little, so the root's figures are the root's); the CPU each process
    spends per POST /missions (bench/cpu.py) says where a request's cost lies, and each
    hop's time (bench/post_hops.py) where its wait lies."""
    client = KeepAlive(stack.root, {"Authorization": "Bearer local-service-key"})
    body = {"type": "oracle", "mode": "dry_run", "objective": "bench", "project_id": "atlas"}
    post = client.request("POST", "/missions", body)
    quick = client.request("POST", "/missions", body, Prefer="respond-async")
    try:
        cpu.start()
        posts = await at_rate(rate, seconds, lambda: timed_post(client, post))
        cpu.stop()
        accepted = await at_rate(rate, seconds, lambda: client.timed(quick))
        _, answer = await client.send(post)
        read = client.request("GET", f"/missions/{json.loads(answer)['mission_id']}")
        got = await at_rate(rate, seconds, lambda: client.timed(read))
    finally:
        await client.close()
    print(f"root API at {rate} requests/s for {seconds}s each (loopback, one process):")
    posted = [(p.answered - p.sent) * 1000 for p in posts]
    record(f"root_post_p99_{rate}rps", percentiles("POST /missions", posted)[98], "ms")
    spent = cpu.per_unit_ms(len(posted))
    print(
        f"  CPU per POST /missions: {sum(spent.values()):.2f} ms, "
        + ", ".join(
            f"{name} {ms:.2f}" for name, ms in sorted(spent.items(), key=lambda item: -item[1])
        )
    )
    names = TopicNames(stack.prefix)
    await report_hops(
        posts, infra.bootstrap_servers, names.commands, names.events, stack.database_url
    )
    quick_cuts = percentiles("POST, respond-async", accepted)
    record(f"root_post_async_p99_{rate}rps", quick_cuts[98], "ms")
    record(f"root_get_p99_{rate}rps", percentiles("GET /missions/{id}", got)[98], "ms")


def main() -> None:
    if sys.argv[1:2] == ["--share"]:
        run_share(*sys.argv[2:7])
        return
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    tune_garbage_collector()  # as the services run (both paths measured with it)
    with embedded_infrastructure() as infra:
        asyncio.run(measure_projections(infra.bootstrap_servers, infra.database_url, total))
        # the API alone: 200 missions a second are far beyond what the colony works
        with running_stack(infra, COLONY_REACTORS="false") as stack:
            cpu = CpuMeter(stack.pids(infra) | {"bench": os.getpid()})
            asyncio.run(measure_gateway(infra, stack, rate=200, seconds=10, cpu=cpu))


if __name__ == "__main__":
    main()
