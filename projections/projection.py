"""What a projection is: a named view, and a pure function from each event to SQL writes.

The projector runs every projection's writes for a batch inside one PostgreSQL
transaction, together with the projection's stored offsets, so each event changes each
view exactly once however often it is delivered. Keeping projections pure (event in,
statements out) lets the runner batch identical statements with executemany.

A record a projection cannot apply is never skipped silently: a view parks it (with the
same mission's later events behind it, projections/parking.py); the archive sets it
aside by offset instead (`set_aside`), so the log can always be restored exactly.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from itertools import groupby
from typing import Any, Generic, TypeVar

from infra.database import Connection
from ledger.events import EVENT_TYPES, RecordedEvent
from ledger.wire import DeadLetterReason


@dataclass(frozen=True)
class CopyInto:
    """A write that appends rows to `table` with COPY (the archive's inserts: many rows,
    no conflict possible once admitted), instead of an SQL statement."""

    table: str
    columns: tuple[str, ...]


Write = tuple[str | CopyInto, tuple[Any, ...]]
R = TypeVar("R")


@dataclass(frozen=True)
class Projected(Generic[R]):
    """A decoded record with its position in its topic, its original bytes, and what it
    is parked under when a view cannot apply it (the mission id for ledger events)."""

    partition: int
    offset: int
    record_key: bytes | None
    raw: bytes
    event: R
    key: str
    kind: str
    sequence: int | None = None
    traceparent: str | None = None
    """The W3C trace context the record carried (infra/tracing.py), if any."""


ProjectedEvent = Projected[RecordedEvent]


@dataclass(frozen=True)
class Unusable:
    """A record that cannot be applied: undecodable bytes, or a write that failed."""

    partition: int
    offset: int
    record_key: bytes | None
    raw: bytes
    mission_id: str | None
    reason: DeadLetterReason
    detail: str


class Projection(Generic[R]):
    """A view built from a topic.

    `tables` are emptied by a rebuild; a projection with `rebuildable = False` (the
    append-only archive) refuses to be rebuilt.
    """

    name: str
    tables: tuple[str, ...]
    rebuildable = True
    rows_per_key = False
    """Whether every write of an item touches only rows of that item's key (its mission):
    then writes of different missions commute, and a batch's writes may be regrouped into
    one run per statement (`in_runs`) instead of one run per event."""

    kinds: frozenset[str] | None = None
    """The kinds of record (event types) this projection writes anything for; None: any.
    The applier hands it only those (`concerned`): most events touch one or two views, and
    asking every view about every event cost the projector ~8 µs an event."""

    def writes(self, item: Projected[R]) -> list[Write]:
        """The statements that apply `item` to the view, in order."""
        raise NotImplementedError

    def concerned(self, items: list[Projected[R]]) -> list[Projected[R]]:
        """The items of a kind this projection writes for (`kinds`)."""
        kinds = self.kinds
        return items if kinds is None else [item for item in items if item.kind in kinds]

    def batch_writes(self, items: list[Projected[R]]) -> list[Write]:
        """Statements run once after a batch's per-item writes: last-value-wins columns
        coalesced per row, so a batch costs one statement per row instead of per event."""
        return []

    def set_aside(self, record: Unusable) -> list[Write] | None:
        """How this projection keeps a record it cannot apply; None parks it (views)."""
        return None

    async def admit(
        self, connection: Connection, items: list[Projected[R]], batch: dict[str, Any]
    ) -> tuple[list[Projected[R]], list[Unusable]]:
        """The items this projection takes, and those it refuses with why (set aside).
        `batch` is shared by the projections of one batch (to compute a lookup once); its
        "careful" says whether the batch is applied with savepoints (a write may then be
        set aside rather than applied)."""
        return items, []


def kinds_written_by(writer: Any) -> frozenset[str]:
    """The event types a `singledispatch` writer has a function of its own for (resolved
    as a call would be, base classes included), its fallback writing nothing."""
    fallback = writer.dispatch(object)
    return frozenset(
        name for name, body in EVENT_TYPES.items() if writer.dispatch(body) is not fallback
    )


def in_runs(sequences: list[list[Write]]) -> list[Write]:
    """Each key's writes (in order) merged into as few runs of one statement as possible:
    each key's order is kept, keys are interleaved freely (`Projection.rows_per_key`).

    Greedy: take the statement the first pending key needs next, and from every key whose
    next write is that statement, all its consecutive writes of it."""
    queues = [deque(writes) for writes in sequences if writes]
    merged: list[Write] = []
    while queues:
        statement = queues[0][0][0]
        pending = []
        for queue in queues:
            while queue and queue[0][0] == statement:
                merged.append(queue.popleft())
            if queue:
                pending.append(queue)
        queues = pending
    return merged


async def execute_writes(connection: Connection, writes: list[Write]) -> None:
    """Run `writes` in order, consecutive runs of one statement as one executemany (or
    one COPY): one round trip per run."""
    for sql, group in groupby(writes, key=lambda write: write[0]):
        rows = [args for _, args in group]
        if isinstance(sql, CopyInto):
            await connection.copy_records_to_table(sql.table, records=rows, columns=sql.columns)
        else:
            await connection.executemany(sql, rows)
