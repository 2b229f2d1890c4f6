"""The one consumer skeleton: a consumer-group member that owns partitions and hands each
fetched batch to a worker. The decider, the projector and the colony are workers.

What every consumer here needs, done once:
- start and stop the client in `try/finally`; subscribe with this loop as the listener;
- each fetch's batches of the partitions it owns are handed over together (the worker
  decides them side by side, or applies them in one transaction);
- a newly assigned partition is paused and *prepared* outside the rebalance callback (the
  worker folds its state, says where to resume), retried with backoff, reported while it
  is not ready; then sought and resumed. Heartbeats and other partitions go on meanwhile;
- a worker may ask to prepare a partition again (the decider's fail-stop);
- progress is flushed periodically, for revoked partitions before they go, and on stop;
- revoked partitions' state is released in a `finally`;
- on stop the worker drains (finishes what is running, or reads to the log's end);
- a stop is seen at once, even while the group rebalances, and leaving the group is
  bounded (a member still joining is dropped by the broker when its session expires).
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from aiokafka.protocol.group import LeaveGroupRequest
from loguru import logger

FLUSH_EVERY_S = 1.0
STOP_WAIT_S = 3.0
"""How long a stopping member waits for its group coordinator (`stop_consumer`): a stable
member's stop, LeaveGroup included, takes milliseconds."""
FETCH_MAX_BYTES = 2 * 1024 * 1024
"""The most a fetch brings (the embedded broker honours this, not the per-partition limit):
at aiokafka's default, 50 MB, the decider and the colony held 30-50 MB of fetched record
batches, a third of their resident memory, more or less from one moment to the next.
2 MB is ~4,000 events, more than a decider's or colony's batch takes: same decider
throughput (bench/ledger.py, A/B pairs). The projector reads in bulk and keeps the
default (`BULK_FETCH_BYTES`): with 2 MB or 8 MB fetches it projected 10-15 % fewer
events a second (bench/projections.py, A/B)."""
BULK_FETCH_BYTES = 50 * 1024 * 1024


def group_consumer(
    options: dict[str, Any],
    group_id: str,
    session_timeout_ms: int,
    max_poll_records: int,
    fetch_wait_ms: int,
    fetch_max_bytes: int = FETCH_MAX_BYTES,
) -> AIOKafkaConsumer:
    """A group member that commits nothing by itself and starts new groups at the start;
    `fetch_wait_ms` is KAFKA_FETCH_WAIT_MS (infra/config.py says what it trades)."""
    return AIOKafkaConsumer(
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=max(session_timeout_ms // 5, 300),
        max_poll_records=max_poll_records,
        fetch_max_wait_ms=fetch_wait_ms,
        fetch_max_bytes=fetch_max_bytes,
        **options,
    )


async def leave_group(consumer: AIOKafkaConsumer) -> None:
    """Leave the group now, even a first generation numbered 0.

    aiokafka sends LeaveGroup on stop only for a generation above 0 (Kafka numbers the
    first one 1); the embedded Tansu broker numbers it 0, so a cleanly stopped member stayed
    in the group until its session expired and the next start waited ~18 s for partitions
    (bench/soak.py). On real Kafka this sends nothing: aiokafka's own leave does it."""
    coordinator = consumer._coordinator
    if coordinator is None or coordinator.generation != 0:
        return
    try:
        await coordinator._send_req(LeaveGroupRequest(coordinator.group_id, coordinator.member_id))
    except KafkaError as error:  # best effort, as aiokafka's own: the session expires anyway
        logger.warning("leaving group {} failed: {}", coordinator.group_id, error)


async def stop_consumer(consumer: AIOKafkaConsumer, name: str) -> None:
    """Stop `consumer`, waiting at most STOP_WAIT_S for its group coordinator.

    aiokafka's stop first lets the coordinator finish what it is doing. For a member still
    joining, that is the JoinGroup answer, which the broker holds until the members it
    knows have joined again or their sessions expired: a service restarted after a kill -9
    and stopped during that wait (Ctrl-C on `make run`) took ~12 s instead of ~2 to exit.
    Past the bound the join is abandoned: such a member owns no partition and has flushed
    its progress, so nothing is lost, and the broker drops it when its session expires, as
    after a crash."""
    try:
        await asyncio.wait_for(consumer.stop(), STOP_WAIT_S)
    except TimeoutError:
        logger.warning(
            "{}: the group coordinator did not finish within {} s (still joining the group);"
            " stopping without it, the broker drops this member when its session expires",
            name,
            STOP_WAIT_S,
        )
        await consumer._fetcher.close()  # what stop() would have done after the coordinator
        await consumer._client.close()


class PartitionWorker(Protocol):
    """What a consumer does with the partitions it owns."""

    async def prepare(self, tp: TopicPartition) -> int:
        """Build the partition's state; the offset to resume consuming from."""

    async def handle(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        """Process one fetch's batches of prepared partitions."""

    async def flush(self, partitions: set[int] | None) -> None:
        """Record progress (of `partitions`, or all owned ones)."""

    def release(self, partitions: set[int]) -> None:
        """Forget the state of partitions this member no longer owns."""

    async def drain(self) -> None:
        """On stop: finish or hand back what is running."""


class PartitionLoop(ConsumerRebalanceListener):  # type: ignore[misc]
    """Runs a worker over the partitions of `topic` this group member owns."""

    def __init__(
        self, name: str, topic: str, consumer: AIOKafkaConsumer, worker: PartitionWorker
    ) -> None:
        self.name = name
        self.topic = topic
        self.consumer = consumer
        self.worker = worker
        self.ready: set[int] = set()
        self.preparing: dict[int, asyncio.Task[None]] = {}
        self.prepare_errors: dict[int, str] = {}
        self.assignments = 0
        self.held = False
        """Fetching paused on every partition at the worker's request (`hold`)."""
        self._turn = asyncio.Lock()  # a rebalance waits for the batch being handled
        self._flushed_at = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop`; then drain, flush and leave the group."""
        await self.consumer.start()
        stopping = asyncio.create_task(stop.wait())
        try:
            self.consumer.subscribe([self.topic], listener=self)
            while (batch := await self._fetch(stopping)) is not None:
                async with self._turn:
                    await self._handle(batch)
                    await self._flush_now_and_then()
            await self.worker.drain()  # outside the lock: a drain may fetch
            async with self._turn:
                await self.worker.flush(None)
        finally:
            stopping.cancel()
            for task in self.preparing.values():
                task.cancel()
            await leave_group(self.consumer)
            await stop_consumer(self.consumer, self.name)

    async def _fetch(
        self, stopping: asyncio.Task[bool]
    ) -> dict[TopicPartition, list[ConsumerRecord]] | None:
        """The next fetch's batches, or None once `stopping` is done.

        aiokafka's getmany ignores its timeout while the group rebalances: it waits for the
        new assignment, which a broker holds until every member it knows has joined or its
        session expired. A stop must not wait for that (a decider restarted after a kill -9
        and stopped a second later took 17 s to exit), so the fetch races the stop."""
        if stopping.done():
            return None
        fetching: asyncio.Task[dict[TopicPartition, list[ConsumerRecord]]]
        fetching = asyncio.ensure_future(self.consumer.getmany(timeout_ms=200))
        await asyncio.wait((fetching, stopping), return_when=asyncio.FIRST_COMPLETED)
        if fetching.done():
            return fetching.result()
        fetching.cancel()
        return None

    async def _handle(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        owned = {tp: records for tp, records in batch.items() if tp.partition in self.ready}
        if owned:
            await self.worker.handle(owned)

    async def _flush_now_and_then(self) -> None:
        now = asyncio.get_running_loop().time()
        if now - self._flushed_at >= FLUSH_EVERY_S:
            self._flushed_at = now
            await self.worker.flush(None)

    def hold(self, held: bool) -> None:
        """Pause fetching from every partition served while `held` (the colony, with too
        many reactions unfinished), resume when not. A partition prepared while held stays
        paused until then: resumed at once, it fetched on unchecked, and a burst went past
        the colony's limit by everything that partition held."""
        if held == self.held:
            return
        self.held = held
        served = [TopicPartition(self.topic, partition) for partition in self.ready]
        if held:
            self.consumer.pause(*served)
        else:
            self.consumer.resume(*served)

    def prepare_again(self, tp: TopicPartition) -> None:
        """Pause `tp` and prepare it anew (its state is gone): the worker's fail-stop. A
        partition no longer assigned (the group moved on) is left to its new owner."""
        self.ready.discard(tp.partition)
        if tp not in self.consumer.assignment():
            return
        self.consumer.pause(tp)
        running = self.preparing.get(tp.partition)
        if running is None or running.done():
            self.preparing[tp.partition] = asyncio.create_task(self._prepare(tp))

    async def _prepare(self, tp: TopicPartition) -> None:
        attempt = 0
        while True:
            try:
                start = await self.worker.prepare(tp)
                break
            except Exception as error:
                attempt += 1
                self.prepare_errors[tp.partition] = f"{type(error).__name__}: {error}"[:200]
                logger.error(
                    "{}: preparing partition {} failed (#{}): {}",
                    self.name,
                    tp.partition,
                    attempt,
                    error,
                )
                await asyncio.sleep(min(0.5 * 2**attempt, 15))
        async with self._turn:
            if tp not in self.consumer.assignment():
                return
            self.consumer.seek(tp, start)
            if not self.held:
                self.consumer.resume(tp)
            self.ready.add(tp.partition)
            self.prepare_errors.pop(tp.partition, None)
            self.preparing.pop(tp.partition, None)

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        gone = {tp.partition for tp in revoked}
        async with self._turn:
            try:
                await self.worker.flush(gone & self.ready)
            finally:
                for partition in gone:
                    task = self.preparing.pop(partition, None)
                    if task is not None:
                        task.cancel()
                    self.prepare_errors.pop(partition, None)
                self.ready -= gone
                self.worker.release(gone)
        if gone:
            logger.info("{} released partitions {}", self.name, sorted(gone))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        """Only record and pause: the partitions are prepared outside the callback."""
        self.assignments += 1
        for tp in assigned:
            self.prepare_again(tp)
        if assigned:
            logger.info("{} owns partitions {}", self.name, sorted(tp.partition for tp in assigned))

    def membership(self) -> dict[str, str]:
        """{group id: member id} once the broker gave this member an id: heartbeats carry it
        so that this service, restarted after a crash, removes it from the group at once
        (infra/group_takeover.py)."""
        coordinator = self.consumer._coordinator
        if coordinator is None or not coordinator.member_id:
            return {}
        return {str(coordinator.group_id): str(coordinator.member_id)}

    def status(self) -> dict[str, Any]:
        """For heartbeats: the partitions served, those still being prepared, and the
        group membership."""
        return {
            "members": self.membership(),
            "partitions": sorted(self.ready),
            "rebuilding": {
                str(p): self.prepare_errors.get(p, "in progress") for p in sorted(self.preparing)
            },
        }
