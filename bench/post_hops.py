"""Where a synchronous `POST /missions` spends its time, hop by hop, seen from outside.

A request that waits for its mission (gateway/command_outcome.py) crosses four hops:
the root appends RequestMission; the decider fetches it and appends MissionRequested;
the projector fetches that and archives it (views in the same transaction); the root
hears the commit and answers. Each hop is timed from what it leaves behind: the client's
clock around the request, each record's timestamp (its producer's clock, the same
machine) and the archive row's `archived_at` (its transaction's start). The two fetch
hops are where the embedded broker's fetch wait shows (KAFKA_FETCH_WAIT_MS: it looks
for records again at halving intervals of the wait), and where CPU contention queues.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.http_load import KeepAlive
from bench.results import record
from infra.topics import COMMANDS, EVENTS, TopicSpec
from ledger.log_reader import fetches_to_end

HOPS = ("root → command", "decider", "projector", "commit → answer")
"""What each hop spans: request sent to RequestMission's record; that record to
MissionRequested's; that record to its archive transaction; that transaction to the
answer."""


@dataclass(frozen=True)
class TimedPost:
    """One answered request: when it was sent and answered (epoch seconds), and its mission."""

    sent: float
    answered: float
    mission_id: str


async def timed_post(client: KeepAlive, raw: bytes) -> TimedPost:
    """Send `raw` (a POST /missions) and keep its times and mission id."""
    sent = time.time()
    status, body = await client.send(raw)
    answered = time.time()
    assert status < 300, body[:500]
    return TimedPost(sent, answered, json.loads(body)["mission_id"])


async def first_record_times(bootstrap: str, topic: str, spec: TopicSpec) -> dict[str, float]:
    """Each mission's first record in `topic`: its timestamp in epoch seconds."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    first: dict[str, float] = {}
    try:
        partitions = [TopicPartition(topic, p) for p in range(spec.partitions)]
        async for batches in fetches_to_end(consumer, partitions):
            for records in batches.values():
                for r in records:
                    if r.key is not None:
                        first.setdefault(r.key.decode(), r.timestamp / 1000)
    finally:
        await consumer.stop()
    return first


async def archived_times(database_url: str) -> dict[str, float]:
    """When each mission's first event was archived (its transaction's start)."""
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT mission_id, extract(epoch FROM archived_at)::float8 AS at"
            " FROM ledger_events WHERE sequence = 1"
        )
    finally:
        await connection.close()
    return {row["mission_id"]: row["at"] for row in rows}


async def report_hops(
    posts: list[TimedPost], bootstrap: str, commands: str, events: str, database_url: str
) -> None:
    """Print p50/p99 of each hop of `posts`; record the two fetch hops' p99."""
    requested = await first_record_times(bootstrap, commands, COMMANDS)
    decided = await first_record_times(bootstrap, events, EVENTS)
    archived = await archived_times(database_url)
    spans: dict[str, list[float]] = {hop: [] for hop in HOPS}
    for post in posts:
        try:
            times = [post.sent, requested[post.mission_id], decided[post.mission_id]]
            times += [archived[post.mission_id], post.answered]
        except KeyError:
            continue  # answered 202 `accepted`: not projected within the wait
        for hop, start, end in zip(HOPS, times, times[1:], strict=False):
            spans[hop].append((end - start) * 1000)
    answered = len(spans[HOPS[0]])
    if answered < 2:
        print(f"  where a POST's time goes: {answered} request(s) projected within the wait")
        return
    print(f"  where a POST's time goes ({answered} requests, ms):")
    for hop, values in spans.items():
        cuts = statistics.quantiles(values, n=100)
        print(f"    {hop:<18} p50 {cuts[49]:6.1f}   p99 {cuts[98]:6.1f}")
        if hop in ("decider", "projector"):
            record(f"root_post_{hop}_hop_p99", cuts[98], "ms")
