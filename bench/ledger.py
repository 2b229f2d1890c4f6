"""bench/ledger: commands decided per second vs the raw aiokafka consume+produce path, by
one decider and by two sharing the partitions in one group as replicas do (beside the raw
path in two processes).

100k commands over 1,000 missions (a RequestMission then budget-use records each,
all accepted). Raw path: the same records consumed and produced to another topic with
plain aiokafka, acks=all, no decoding; and that path again with each command's Avro
decoded and its events' Avro encoded (the wire format's own cost, no models, no deciding:
`decider_codec_ceiling`). Also the restart time: a new decider rebuilding state from the
100k events. Run with `make bench` (or `python -m bench.ledger N`).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.common import (
    Stopwatch,
    embedded_infrastructure,
    fresh_topics,
    mission_commands,
    wait_until,
)
from bench.results import record
from infra.service_runtime import tune_garbage_collector
from infra.topics import COMMANDS, TopicNames, partition_for
from ledger.authority import LOCAL_VERIFY_KEYS, OperatorAuthority
from ledger.commands import Command
from ledger.decider import Decider, Folded, fold_partition
from ledger.events import RecordedEvent
from ledger.log_reader import fetches_to_end
from ledger.mission_cache import MissionCache
from ledger.settings import DeciderSettings
from ledger.state import MissionState
from ledger.step import step
from ledger.wire import LedgerWire

MISSIONS = 1_000
REPLICAS = 2
ALL = tuple(range(COMMANDS.partitions))


def commands(total: int) -> list[Command]:
    now = datetime.now(UTC)
    return [
        item
        for _ in range(MISSIONS)
        for item in mission_commands(str(uuid.uuid4()), total // MISSIONS, now)
    ]


async def fill(bootstrap: str, names: TopicNames, stream: list[Command]) -> None:
    wire = LedgerWire()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        sends = []
        for item in stream:
            record = wire.encode_command(item)
            sends.append(
                await producer.send(
                    names.commands, record.value, record.key, headers=record.headers
                )
            )
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


Rewrite = Callable[[int, int, bytes], Sequence[bytes]]
"""What a pass produces for the record at (partition, offset) with these bytes."""
Positions = dict[tuple[int, int], list[RecordedEvent]]
"""The events each command record (partition, offset) was decided into."""


def unchanged(partition: int, offset: int, value: bytes) -> Sequence[bytes]:
    return (value,)


def codec_only(decided: Positions) -> Rewrite:
    """Each command's Avro decoded and its events' Avro encoded, from values prepared
    beforehand: the wire format's own work, with no model, no check and no deciding."""
    wire = LedgerWire()
    values = {
        position: [wire.event_fields(event) for event in events]
        for position, events in decided.items()
    }

    def rewrite(partition: int, offset: int, value: bytes) -> Sequence[bytes]:
        wire.codec.decode(value)
        return [wire.codec.encode(name, fields) for name, fields in values[partition, offset]]

    return rewrite


async def raw_pass(
    bootstrap: str,
    names: TopicNames,
    total: int,
    share: Sequence[int] = ALL,
    rewrite: Rewrite = unchanged,
) -> tuple[float, float]:
    """Consume every command record of the partitions in `share` (`total` of them) and
    produce it (or what `rewrite` makes of it) to another topic; the (start, end) of the
    work, in seconds since the epoch."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1)
    await consumer.start()
    await producer.start()
    try:
        partitions = [TopicPartition(names.commands, p) for p in share]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        started = time.time()
        seen = 0
        while seen < total:
            batch = await consumer.getmany(timeout_ms=200)
            sends = []
            for tp, records in batch.items():
                for record in records:
                    for value in rewrite(tp.partition, record.offset, record.value or b""):
                        sends.append(
                            await producer.send(names.metrics, value, record.key, tp.partition % 3)
                        )
                seen += len(records)
            await asyncio.gather(*sends)
        return started, time.time()
    finally:
        await consumer.stop()
        await producer.stop()


async def pure_pass(bootstrap: str, names: TopicNames, total: int) -> tuple[float, Positions]:
    """Consume every command and do the decider's own work on it (decode, decide, encode
    the events), states in a dict, nothing produced; seconds, and the events of each
    record. The decider cannot beat its own pure work: this bounds the ratio it can reach
    on this machine."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    wire, authority = LedgerWire(), OperatorAuthority.parse(LOCAL_VERIFY_KEYS)
    states: dict[str, MissionState] = {}
    partitions = [TopicPartition(names.commands, p) for p in range(COMMANDS.partitions)]
    decided: Positions = {}
    clock = Stopwatch()
    try:
        async for batches in fetches_to_end(consumer, partitions):
            for records in batches.values():
                for record in records:
                    command = wire.decode_command(record.value or b"")
                    mission_id = command.meta.mission_id
                    state = states.get(mission_id) or MissionState(mission_id=mission_id)
                    states[mission_id], events = step(state, command, datetime.now(UTC), authority)
                    for event in events:
                        wire.encode_event(event)
                    decided[record.partition, record.offset] = events
        return clock.seconds, decided
    finally:
        await consumer.stop()


async def decider_pass(bootstrap: str, names: TopicNames, total: int) -> tuple[float, float]:
    """(seconds to decide everything, seconds a new decider takes to rebuild its state)."""
    settings = DeciderSettings(
        KAFKA_TOPIC_PREFIX=names.prefix,
        DECIDER_GROUP_ID=f"bench-{uuid.uuid4().hex[:6]}",
        KAFKA_SESSION_TIMEOUT_MS=6_000,
    )
    decider = Decider(settings, bootstrap)
    stop = asyncio.Event()
    running = asyncio.create_task(decider.run(stop))
    await wait_until(lambda: decider.decided > 0)
    clock = Stopwatch()
    started_at = decider.decided
    await wait_until(lambda: decider.decided >= total)
    seconds = clock.seconds * total / max(total - started_at, 1)
    stop.set()
    await running
    rebuild = Stopwatch()
    options = {"bootstrap_servers": bootstrap}
    missions = 0
    for partition in range(COMMANDS.partitions):
        start = Folded(MissionCache(), 0, None)
        folded = await fold_partition(options, names.events, partition, LedgerWire(), start)
        missions += len(folded.missions)
    rebuild_s = rebuild.seconds
    assert missions == MISSIONS
    return seconds, rebuild_s


def shares(stream: list[Command]) -> dict[tuple[int, ...], int]:
    """The partitions of each of REPLICAS processes, with how many of `stream`'s commands
    they hold (the producer's partitioner put them there)."""
    held = Counter(partition_for(c.meta.mission_id.encode(), COMMANDS.partitions) for c in stream)
    return {
        share: sum(held[p] for p in share)
        for share in (tuple(ALL[index::REPLICAS]) for index in range(REPLICAS))
    }


async def children(*arguments: list[str]) -> list[asyncio.subprocess.Process]:
    """`python -m bench.ledger` once per argument list, their output piped."""
    return [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.ledger", *argv, stdout=asyncio.subprocess.PIPE
        )
        for argv in arguments
    ]


async def raw_replicas(bootstrap: str, names: TopicNames, stream: list[Command]) -> float:
    """The raw path in REPLICAS processes, each with its share of the partitions; seconds
    from the first one's start to the last one's end."""
    share_of = shares(stream)
    spawned = await children(
        *(
            ["--raw", bootstrap, names.prefix, ",".join(map(str, share)), str(count)]
            for share, count in share_of.items()
        )
    )
    spans = [json.loads((await child.communicate())[0]) for child in spawned]
    return float(max(end for _, end in spans) - min(start for start, _ in spans))


async def decider_replicas(bootstrap: str, names: TopicNames, total: int) -> float:
    """REPLICAS deciders in one consumer group, each in its own process, as replicas run
    (STACK_REPLICAS); seconds from the first command decided to the last. Each reports
    how many it has decided every 20 ms."""
    group = f"bench-{uuid.uuid4().hex[:6]}"
    spawned = await children(
        *(["--decide", bootstrap, names.prefix, group] for _ in range(REPLICAS))
    )
    decided = [0] * REPLICAS
    first: tuple[float, int] | None = None
    finished: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    async def follow(index: int, child: asyncio.subprocess.Process) -> None:
        nonlocal first
        assert child.stdout is not None
        async for line in child.stdout:
            count, at = line.split()
            decided[index] = int(count)
            if first is None and decided[index]:
                first = (float(at), sum(decided))
            if sum(decided) >= total and not finished.done():
                finished.set_result(float(at))

    following = [asyncio.create_task(follow(i, child)) for i, child in enumerate(spawned)]
    try:
        ended = await finished
    finally:
        for child in spawned:
            child.send_signal(signal.SIGTERM)
        await asyncio.gather(*(child.wait() for child in spawned))
        await asyncio.gather(*following, return_exceptions=True)
    assert first is not None
    started, counted = first
    return (ended - started) * total / max(total - counted, 1)


async def decide_in_group(bootstrap: str, prefix: str, group: str) -> None:
    """A child of `decider_replicas`: a decider in `group` until SIGTERM, printing how many
    commands it has decided every 20 ms."""
    settings = DeciderSettings(
        KAFKA_TOPIC_PREFIX=prefix, DECIDER_GROUP_ID=group, KAFKA_SESSION_TIMEOUT_MS=6_000
    )
    decider = Decider(settings, bootstrap)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    running = asyncio.create_task(decider.run(stop))
    while not running.done():
        print(decider.decided, time.time(), flush=True)
        await asyncio.wait([running], timeout=0.02)
    await running


async def measure(bootstrap: str, total: int) -> None:
    names = await fresh_topics(bootstrap)
    stream = commands(total)
    total = len(stream)
    print(f"filling {total:,} commands over {MISSIONS:,} missions …", file=sys.stderr)
    await fill(bootstrap, names, stream)
    raw_start, raw_end = await raw_pass(bootstrap, names, total)
    raw_s = raw_end - raw_start
    pure_s, decided = await pure_pass(bootstrap, names, total)
    codec_start, codec_end = await raw_pass(bootstrap, names, total, rewrite=codec_only(decided))
    decided_s, rebuild_s = await decider_pass(bootstrap, names, total)
    raw_shared_s = await raw_replicas(bootstrap, names, stream)
    names = await fresh_topics(bootstrap)  # the replicas decide it all again, from nothing
    await fill(bootstrap, names, stream)
    shared_s = await decider_replicas(bootstrap, names, total)
    raw_rate, decider_rate, ceiling = total / raw_s, total / decided_s, total / pure_s
    codec_rate = total / (codec_end - codec_start)
    raw_shared, shared = total / raw_shared_s, total / shared_s
    print(f"raw aiokafka consume+produce: {raw_rate:>10,.0f} records/s ({raw_s:.1f}s)")
    print(f"consume + decide, no I/O:     {ceiling:>10,.0f} commands/s ({pure_s:.1f}s)")
    print(
        f"raw path + Avro only:         {codec_rate:>10,.0f} commands/s (each command's Avro"
        f" decoded and its events' encoded: {codec_rate / raw_rate:.2f} of raw)"
    )
    print(f"decider:                      {decider_rate:>10,.0f} commands/s ({decided_s:.1f}s)")
    print(
        f"ratio decider/raw:            {decider_rate / raw_rate:>10.2f} (aim: >= 0.5;"
        f" its pure work alone reaches {ceiling / raw_rate:.2f})"
    )
    print(
        f"raw path, {REPLICAS} processes:    {raw_shared:>10,.0f} records/s ({raw_shared_s:.1f}s)"
    )
    print(f"{REPLICAS} deciders, one group:     {shared:>10,.0f} commands/s ({shared_s:.1f}s)")
    print(
        f"ratio {REPLICAS} deciders/raw:         {shared / raw_rate:>10.2f} (against the raw path"
        f" in {REPLICAS} processes {shared / raw_shared:.2f})"
    )
    print(f"restart (state rebuild) of {total:,} events: {rebuild_s:.1f}s")
    record("decider", decider_rate, "commands/s", raw_rate)
    record(f"decider_{REPLICAS}_processes", shared, "commands/s", raw_rate)
    record(f"raw_consume_produce_{REPLICAS}_processes", raw_shared, "records/s", raw_rate)
    record("decider_pure_ceiling", ceiling, "commands/s", raw_rate)
    record("decider_codec_ceiling", codec_rate, "commands/s", raw_rate)
    record("decider_rebuild", rebuild_s, "s")


def main() -> None:
    if sys.argv[1:2] == ["--raw"]:
        bootstrap, prefix, share, count = sys.argv[2:6]
        partitions = [int(p) for p in share.split(",")]
        span = asyncio.run(raw_pass(bootstrap, TopicNames(prefix), int(count), partitions))
        print(json.dumps(span))
        return
    if sys.argv[1:2] == ["--decide"]:
        tune_garbage_collector()
        asyncio.run(decide_in_group(*sys.argv[2:5]))
        return
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    tune_garbage_collector()  # as the services run (both paths measured with it)
    with embedded_infrastructure() as infra:
        asyncio.run(measure(infra.bootstrap_servers, total))


if __name__ == "__main__":
    main()
