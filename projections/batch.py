"""Applying batches of records to projections, exactly once, never stuck.

One transaction per fetch: lock the projections' stored offsets of its partitions, apply
each projection's writes for the records it has not seen, store the new offsets. Under
live load a fetch holds a few records of each partition; one transaction for all of them
costs one set of round trips and one commit instead of one per partition. Used by the
live projector (consumer group) and by rebuilds (a reader of the whole log).

A batch is first applied optimistically: each projection's writes regrouped into one run
per statement where its rows are per mission (`Projection.rows_per_key`), no savepoints.
When a write fails on a data or constraint error, that transaction is rolled back and the
batch applied again carefully: a savepoint per projection, and when a projection's
savepoint fails, record by record (a savepoint each) to find the records at fault: a view
parks each of them, with its mission's later records behind it (projections/parking.py);
the archive sets it aside by offset. Other missions keep flowing. (A fetch of several
partitions whose optimistic pass fails is applied carefully one partition at a time.)
Any other error (the database restarting, a lost connection) retries the whole batch with
backoff. A strict applier (rebuilds) stops at the first failing record and says where.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic

import asyncpg
from aiokafka import ConsumerRecord, TopicPartition
from loguru import logger
from tenacity import AsyncRetrying, retry_if_exception, wait_exponential

from infra.database import DATABASE_OUTAGES, Connection
from ledger.dead_letters import DeadLetters
from ledger.wire import UNKNOWN_SCHEMA
from projections.feeds import Feed
from projections.offsets import StoredOffsets, lock_offsets, save_offsets
from projections.parking import describe, deterministic, park_write, parked_keys
from projections.projection import (
    Projected,
    Projection,
    R,
    Unusable,
    Write,
    execute_writes,
    in_runs,
)

DECODE_SLICE = 64
"""Records decoded between two turns of the event loop (`decode_fetch`)."""
ACQUIRE_TIMEOUT_S = 10.0
"""Waiting longer for a pooled connection is an outage: the batch is retried."""


class ProjectionFailedError(RuntimeError):
    """A strict apply met a record a projection cannot apply; the message says where."""


class _NeedsCareError(Exception):
    """The optimistic pass met a write that fails for good: its transaction is rolled back
    and the batch applied again with savepoints, to find the records at fault."""


@dataclass(frozen=True)
class Share(Generic[R]):
    """One partition's records of a fetch, decoded; `letters` are the records that do not
    decode, each with why (dead-lettered when the fetch is applied)."""

    tp: TopicPartition
    records: list[ConsumerRecord]
    usable: list[Projected[R]]
    letters: list[tuple[ConsumerRecord, Unusable]]

    @property
    def unusable(self) -> list[Unusable]:
        return [item for _, item in self.letters]

    @property
    def first(self) -> int:
        return int(self.records[0].offset)

    @property
    def last(self) -> int:
        return int(self.records[-1].offset)

    def behind(self, stored: StoredOffsets, names: list[str]) -> int | None:
        """Where to seek back to if a projection's stored offset is behind this batch."""
        least = min(stored.get((name, self.tp.partition), 0) for name in names)
        return least if least < self.first else None


Seeks = dict[TopicPartition, int | None]
"""For each partition of an applied fetch, an earlier offset to seek back to, or None."""


@dataclass(frozen=True)
class DecodedFetch(Generic[R]):
    """A fetch decoded and ready to apply: every partition it brought (each gets an answer
    in `Seeks`) and the shares to apply."""

    partitions: list[TopicPartition]
    shares: list[Share[R]]


def batch_writes(projection: Projection[R], items: list[Projected[R]]) -> list[Write]:
    """Every item's writes, then the projection's batch writes; regrouped into runs of one
    statement when the projection's writes of different missions commute."""
    if not projection.rows_per_key:
        writes = [write for item in items for write in projection.writes(item)]
    else:
        by_key: dict[str, list[Write]] = {}
        for item in items:
            by_key.setdefault(item.key, []).extend(projection.writes(item))
        writes = in_runs(list(by_key.values()))
    return writes + projection.batch_writes(items)


def transient(error: BaseException) -> bool:
    """A database or network error that may pass: retry the batch, do not park."""
    return isinstance(error, (*DATABASE_OUTAGES, asyncpg.PostgresError)) and not (
        deterministic(error)
    )


class BatchApplier(Generic[R]):
    """Applies batches of `feed` to `projections`; undecodable records are dead-lettered."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        feed: Feed[R],
        dead_letters: DeadLetters,
        *,
        projections: Sequence[Projection[R]] | None = None,
        strict: bool = False,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.pool = pool
        self.feed = feed
        self.projections = list(projections if projections is not None else feed.projections)
        self.names = [p.name for p in self.projections]
        self.dead_letters = dead_letters
        self.strict = strict
        self.stopping = stopping
        self.applied = 0
        self.retries = 0
        self.held: dict[int, str] = {}
        self.held_at: dict[int, int] = {}

    async def apply(self, tp: TopicPartition, records: list[ConsumerRecord]) -> int | None:
        """Apply one partition's `records` (see `apply_fetch`)."""
        return (await self.apply_fetch({tp: records}))[tp]

    async def apply_fetch(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> Seeks:
        """Apply each partition's records, all in one transaction; for each partition, an
        earlier offset to seek back to if a projection was reset behind its batch (a
        rebuild) or the partition is held, else None.

        A record whose writer schema this release does not know holds the partition at its
        offset (`held`): what precedes it is applied, nothing after it, until an upgraded
        projector reads it. It is not set aside: it is history this code cannot read yet."""
        return await self.apply_decoded(await self.decode_fetch(batches))

    async def decode_fetch(
        self, batches: dict[TopicPartition, list[ConsumerRecord]]
    ) -> DecodedFetch[R]:
        """The fetch decoded (the first half of `apply_fetch`), a slice at a time: between
        slices the event loop turns, and a fetch being applied meanwhile sends its next
        statement (projections/pipeline.py)."""
        shares = []
        for tp, records in batches.items():
            items: list[Projected[R] | Unusable] = []
            for start in range(0, len(records), DECODE_SLICE):
                items += [
                    self.feed.project(r.partition, r.offset, r.value or b"", r.key, r.headers)
                    for r in records[start : start + DECODE_SLICE]
                ]
                await asyncio.sleep(0)
            share = self._share(tp, records, items)
            if share is not None:
                shares.append(share)
        return DecodedFetch(list(batches), shares)

    async def apply_decoded(self, fetch: DecodedFetch[R]) -> Seeks:
        """Dead-letter what did not decode, then apply the rest (the second half of
        `apply_fetch`)."""
        for share in fetch.shares:
            for record, item in share.letters:
                await self.dead_letters.publish(record, item.reason, item.detail)
        behind = await self._apply_retried(fetch.shares) if fetch.shares else {}
        self.applied += sum(len(share.records) for share in fetch.shares)
        return {tp: self.held_at.get(tp.partition, behind.get(tp)) for tp in fetch.partitions}

    def _share(
        self,
        tp: TopicPartition,
        records: list[ConsumerRecord],
        items: list[Projected[R] | Unusable],
    ) -> Share[R] | None:
        """The partition's decoded records up to a hold."""
        items = self._until_unknown_schema(tp, items)
        records = records[: len(items)]
        if not records:
            return None
        usable = [item for item in items if isinstance(item, Projected)]
        letters = [
            (record, item)
            for record, item in zip(records, items, strict=True)
            if isinstance(item, Unusable)
        ]
        return Share(tp, records, usable, letters)

    async def _apply_retried(self, shares: list[Share[R]]) -> Seeks:
        """Apply `shares` optimistically, else carefully one by one; outages retried."""
        behind: Seeks = {}
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(transient),
            wait=wait_exponential(multiplier=0.2, max=5),
            stop=lambda _: self.stopping(),
            before_sleep=self._log_retry,
            reraise=True,
        ):
            with attempt:
                try:
                    behind = await self._apply_once(shares, careful=False)
                except _NeedsCareError:
                    for share in shares:
                        behind |= await self._apply_once([share], careful=True)
        return behind

    def _until_unknown_schema(
        self, tp: TopicPartition, items: list[Projected[R] | Unusable]
    ) -> list[Projected[R] | Unusable]:
        """`items` up to the first of an unknown writer schema, which holds `tp` there."""
        for index, item in enumerate(items):
            if isinstance(item, Unusable) and item.reason == UNKNOWN_SCHEMA:
                if tp.partition not in self.held_at:
                    logger.error(
                        "{}[{}] held at offset {}: {} (upgrade this projector to read it)",
                        tp.topic,
                        tp.partition,
                        item.offset,
                        item.detail,
                    )
                self.held_at[tp.partition] = item.offset
                self.held[tp.partition] = f"offset {item.offset}: {item.detail}"
                return items[:index]
        return items

    def _log_retry(self, state: Any) -> None:
        self.retries += 1
        error = state.outcome.exception() if state.outcome else None
        logger.warning(
            "projection batch failed ({}); retry #{} in {:.1f}s",
            type(error).__name__,
            state.attempt_number,
            state.next_action.sleep if state.next_action else 0,
        )

    async def _apply_once(self, shares: list[Share[R]], *, careful: bool) -> Seeks:
        topic = shares[0].tp.topic
        partitions = [share.tp.partition for share in shares]
        async with (
            self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as connection,
            connection.transaction(),
        ):
            stored = await lock_offsets(connection, topic, partitions, self.names)
            waiting = await parked_keys(connection, topic, partitions, self.names)
            advanced: StoredOffsets = {}
            shared: dict[str, Any] = {"careful": careful}
            for projection in self.projections:
                fresh: list[Projected[R]] = []
                bad: list[Unusable] = []
                for share in shares:
                    next_offset = stored.get((projection.name, share.tp.partition), 0)
                    if next_offset < share.first or next_offset > share.last:
                        continue  # reset behind this batch, or already past it
                    fresh += [item for item in share.usable if item.offset >= next_offset]
                    bad += [item for item in share.unusable if item.offset >= next_offset]
                    advanced[(projection.name, share.tp.partition)] = share.last + 1
                if not any(name == projection.name for name, _ in advanced):
                    continue
                fresh, refused = await projection.admit(
                    connection, projection.concerned(fresh), shared
                )
                held = waiting.get(projection.name, set())
                await self._project(connection, projection, topic, fresh, held, careful)
                await self._set_aside(connection, projection, bad + refused)
            await save_offsets(connection, topic, advanced)
        return {share.tp: share.behind(stored, self.names) for share in shares}

    async def _project(
        self,
        connection: Connection,
        projection: Projection[R],
        topic: str,
        items: list[Projected[R]],
        held: set[str],
        careful: bool,
    ) -> None:
        """Apply `items` set-wise; on a deterministic failure find and park the culprits
        (`careful`), or give the batch up to be applied carefully.
        Items of missions already parked for this projection wait behind them."""
        flowing = [item for item in items if item.key not in held]
        waiting = [item for item in items if item.key in held]
        if not careful:
            await self._optimistically(connection, projection, flowing)
        elif not await self._all_at_once(connection, projection, flowing):
            waiting += await self._one_by_one(connection, projection, topic, flowing)
        waiting.sort(key=lambda item: item.offset)
        await execute_writes(
            connection, [park_write(projection.name, topic, item, None) for item in waiting]
        )

    async def _optimistically(
        self, connection: Connection, projection: Projection[R], items: list[Projected[R]]
    ) -> None:
        """The fast path: every write with no savepoint (two round trips each saved)."""
        try:
            await execute_writes(connection, batch_writes(projection, items))
        except Exception as error:  # a pure projection raising is as deterministic as SQL
            if transient(error):
                raise
            raise _NeedsCareError(describe(error)) from error

    async def _all_at_once(
        self, connection: Connection, projection: Projection[R], items: list[Projected[R]]
    ) -> bool:
        """Careful, first: the whole batch in one savepoint."""
        try:
            writes = batch_writes(projection, items)
            async with connection.transaction():
                await execute_writes(connection, writes)
        except Exception as error:  # a pure projection raising is as deterministic as SQL
            if transient(error):
                raise
            return False
        return True

    async def _one_by_one(
        self,
        connection: Connection,
        projection: Projection[R],
        topic: str,
        items: list[Projected[R]],
    ) -> list[Projected[R]]:
        """Each item in its own savepoint, parking (or setting aside) those that fail; the
        items that must wait behind a mission parked on the way."""
        parked: set[str] = set()
        behind: list[Projected[R]] = []
        for item in items:
            if item.key in parked:
                behind.append(item)
                continue
            error = await self._apply_item(connection, projection, item)
            if error is None:
                continue
            if self.strict:
                raise ProjectionFailedError(
                    f"{projection.name} cannot apply {item.kind} #{item.sequence} of {item.key}"
                    f" at partition {item.partition} offset {item.offset}: {error}"
                )
            if not await self._keep_aside(connection, projection, item, error):
                await execute_writes(connection, [park_write(projection.name, topic, item, error)])
                parked.add(item.key)
            logger.bind(mission_id=item.key).error(
                "{} could not apply {} #{} at offset {}: {}",
                projection.name,
                item.kind,
                item.sequence,
                item.offset,
                error,
            )
        return behind

    async def _keep_aside(
        self, connection: Connection, projection: Projection[R], item: Projected[R], error: str
    ) -> bool:
        """Whether `projection` keeps refused records aside (the archive) rather than park."""
        record = Unusable(
            item.partition, item.offset, item.record_key, item.raw, item.key, "refused", error
        )
        kept = projection.set_aside(record)
        if kept is None:
            return False
        await execute_writes(connection, kept)
        return True

    async def _apply_item(
        self, connection: Connection, projection: Projection[R], item: Projected[R]
    ) -> str | None:
        try:
            writes: list[Write] = projection.writes(item) + projection.batch_writes([item])
            async with connection.transaction():
                await execute_writes(connection, writes)
        except Exception as error:  # see _all_at_once
            if transient(error):
                raise
            return describe(error)
        return None

    async def _set_aside(
        self, connection: Connection, projection: Projection[R], records: list[Unusable]
    ) -> None:
        for record in records:
            kept = projection.set_aside(record)
            if kept:
                await execute_writes(connection, kept)
