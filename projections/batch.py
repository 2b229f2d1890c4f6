"""Applying a batch of one partition's events to projections, exactly once.

One transaction per batch: lock the projections' stored offsets, apply each
projection's writes for the events it has not seen, store the new offsets. Used by the
live projector (consumer group) and by rebuilds (a reader of the whole log).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic

import asyncpg
from aiokafka import ConsumerRecord, TopicPartition

from ledger.dead_letters import DeadLetters
from ledger.wire import InvalidRecordError
from projections.offsets import StoredOffsets, lock_offsets, save_offsets
from projections.projection import Projected, Projection, R, execute_writes


class BatchApplier(Generic[R]):
    """Applies batches to `projections`; records `decode` refuses go to the dead letters."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        projections: Sequence[Projection[R]],
        decode: Callable[[bytes], R],
        dead_letters: DeadLetters,
    ) -> None:
        self.pool = pool
        self.projections = list(projections)
        self.names = [p.name for p in self.projections]
        self.decode = decode
        self.dead_letters = dead_letters
        self.applied = 0

    async def apply(self, tp: TopicPartition, records: list[ConsumerRecord]) -> int | None:
        """Apply `records`; return an earlier offset to seek back to if a projection was
        reset behind this batch (a rebuild), else None."""
        decoded = await self._decode(records)
        first, last = records[0].offset, records[-1].offset
        async with self.pool.acquire() as connection, connection.transaction():
            stored = await lock_offsets(connection, tp.topic, [tp.partition], self.names)
            advanced: StoredOffsets = {}
            for projection in self.projections:
                next_offset = stored.get((projection.name, tp.partition), 0)
                if next_offset < first or next_offset > last:
                    continue  # reset behind this batch, or already past it
                fresh = [e for e in decoded if e.offset >= next_offset]
                writes = [w for e in fresh for w in projection.writes(e)]
                await execute_writes(connection, writes + projection.batch_writes(fresh))
                advanced[(projection.name, tp.partition)] = last + 1
            await save_offsets(connection, tp.topic, advanced)
        self.applied += len(records)
        behind = min(stored.get((name, tp.partition), 0) for name in self.names)
        return behind if behind < first else None

    async def _decode(self, records: list[ConsumerRecord]) -> list[Projected[R]]:
        decoded = []
        for item in records:
            try:
                value = self.decode(item.value or b"")
            except InvalidRecordError as error:
                await self.dead_letters.publish(item, error.reason, error.detail)
                continue
            decoded.append(Projected(item.partition, item.offset, item.value or b"", value))
        return decoded
