"""Applying fetches one after another while the next one is decoded.

A fetch costs the projector two things in turn: decoding its records (CPU in this
process: Avro, validation) and applying them (one transaction: mostly waiting for
PostgreSQL, which works on the other core). Done one after the other, each waits for the
other; here fetch N is applied in the background while fetch N+1 is decoded, so the two
overlap. On a backlog (a projector catching up, a rebuild) that projected 13-19 % more
events a second (bench/projections.py, interleaved pairs in docs/architecture.md).

Nothing about the guarantees changes: one transaction at a time, in fetch order, each
checking the stored offsets under its row lock. What fetch N answers (seek a partition
back: it is held at a record this release cannot read, or a rebuild reset it) is known only
once it is applied, after fetch N+1 was decoded, and needs nothing of N+1 undone: N+1's
records of that partition start past its stored offset, so N+1's own check skips them and
sends the partition back too.
"""

from __future__ import annotations

import asyncio
from typing import Generic

from aiokafka import ConsumerRecord, TopicPartition

from projections.batch import BatchApplier, Seeks
from projections.projection import R


class ApplyPipeline(Generic[R]):
    """At most one fetch being applied, the next decoded meanwhile."""

    def __init__(self, applier: BatchApplier[R]) -> None:
        self.applier = applier
        self._applying: asyncio.Task[Seeks] | None = None

    async def push(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> Seeks:
        """Decode `batches`, then start applying them once the fetch before is applied;
        that earlier fetch's seeks (see `BatchApplier.apply_fetch`)."""
        fetch = await self.applier.decode_fetch(batches)
        seeks = await self.settle()
        self._applying = asyncio.create_task(self.applier.apply_decoded(fetch))
        return seeks

    async def settle(self) -> Seeks:
        """Wait until the fetch being applied is; its seeks (none if nothing was pushed).
        A failure to apply it is raised here."""
        applying, self._applying = self._applying, None
        return await applying if applying is not None else {}

    async def abandon(self) -> None:
        """Cancel the fetch being applied (its transaction rolls back, its offsets stay
        unstored: the records are read again): for a projector stopping on an error."""
        applying, self._applying = self._applying, None
        if applying is not None:
            applying.cancel()
            await asyncio.gather(applying, return_exceptions=True)
