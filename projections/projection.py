"""What a projection is: a named view, and a pure function from each event to SQL writes.

The projector runs every projection's writes for a batch inside one PostgreSQL
transaction, together with the projection's stored offsets, so each event changes each
view exactly once however often it is delivered. Keeping projections pure (event in,
statements out) lets the runner batch identical statements with executemany.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby
from typing import Any, Generic, Protocol, TypeVar

from infra.database import Connection
from ledger.events import RecordedEvent

Write = tuple[str, tuple[Any, ...]]
R = TypeVar("R")


@dataclass(frozen=True)
class Projected(Generic[R]):
    """A decoded record with its position in its topic and its original bytes."""

    partition: int
    offset: int
    raw: bytes
    event: R


ProjectedEvent = Projected[RecordedEvent]


class Projection(Protocol[R]):
    """A view built from the event log.

    `tables` are emptied by a rebuild; a projection with `rebuildable = False` (the
    append-only archive) refuses to be rebuilt.
    """

    name: str
    tables: tuple[str, ...]
    rebuildable: bool

    def writes(self, item: Projected[R]) -> list[Write]:
        """The statements that apply `item` to the view, in order."""

    def batch_writes(self, items: list[Projected[R]]) -> list[Write]:
        """Statements run once after a batch's per-item writes: last-value-wins columns
        coalesced per row, so a batch costs one statement per row instead of per event."""


async def execute_writes(connection: Connection, writes: list[Write]) -> None:
    """Run `writes` in order, consecutive runs of one statement as one executemany."""
    for sql, group in groupby(writes, key=lambda write: write[0]):
        await connection.executemany(sql, [args for _, args in group])
