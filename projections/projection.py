"""What a projection is: a named view fed, batch by batch, with ledger events.

The projector applies a batch to every projection inside one PostgreSQL transaction
together with the projection's stored offsets, so each event changes each view
exactly once, however often it is delivered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from infra.database import Connection
from ledger.events import RecordedEvent


@dataclass(frozen=True)
class ProjectedEvent:
    """A decoded event with its position in `mission.events` and its original bytes."""

    partition: int
    offset: int
    raw: bytes
    event: RecordedEvent


class Projection(Protocol):
    """A view built from the event log.

    `tables` are emptied by a rebuild; a projection with `rebuildable = False` (the
    append-only archive) refuses to be rebuilt.
    """

    name: str
    tables: tuple[str, ...]
    rebuildable: bool

    async def apply(self, connection: Connection, events: list[ProjectedEvent]) -> None:
        """Write the effect of `events` (in log order) using `connection`'s transaction."""
