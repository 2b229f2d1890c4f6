"""The event archive projection: every event of a mission's history, exactly once,
append-only, with its bytes; and the views that follow it.

Auditors query it without Kafka; `velocity ledger verify` checks its chains; the stack
republishes it into an empty broker (ledger/restore.py). It admits an event only if it is
the next link of its mission's history (ledger/history.py, against the archived heads);
a record that is not (undecodable, a taken position, the orphan after a gap) is set aside
by offset in `ledger_set_aside` with why, so the log can always be republished exactly.
It never parks: an event whose text jsonb cannot hold is archived with that text replaced
(`data_exact` false, the exact bytes in `record`).

The other views of `mission.events` (`FollowsArchive`) apply exactly the events the
archive holds, so nothing that is not history reaches them.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from infra.database import Connection
from ledger.events import CommandRejected, RecordedEvent
from ledger.history import History
from ledger.text import cleaned_document, storable_json_bytes
from projections.projection import CopyInto, ProjectedEvent, Projection, Unusable, Write

INSERT = CopyInto(
    "ledger_events",
    (
        "mission_id",
        "sequence",
        "event_id",
        "event_type",
        "occurred_at",
        "causation_id",
        "correlation_id",
        "trace_id",
        "actor",
        "prev_hash",
        "hash",
        "data",
        "record",
        "topic_partition",
        "topic_offset",
        "data_exact",
    ),
)
HEADS = """
SELECT m.mission_id, head.sequence, head.hash FROM unnest($1::text[]) AS m(mission_id)
CROSS JOIN LATERAL (
    SELECT e.sequence, e.hash FROM ledger_events e WHERE e.mission_id = m.mission_id
    ORDER BY e.sequence DESC LIMIT 1
) AS head
"""
"""Each mission's last archived link: one backward probe of the primary key per mission.
(DISTINCT ON over `mission_id = ANY(...)` read every event of the batch's missions, and
PostgreSQL chose a full scan of the archive once a batch named a few hundred missions.)"""
ARCHIVED = """
SELECT topic_partition, topic_offset FROM ledger_events
WHERE (topic_partition, topic_offset) IN (SELECT * FROM unnest($1::int[], $2::bigint[]))
"""
PROJECTED_CHANNEL = "velocity_projected"
"""Notified (LISTEN/NOTIFY) when a batch of events is archived, so the root wakes the
requests waiting for their commands' outcome at the commit instead of polling for it."""
NOTIFY = "SELECT pg_notify($1, $2)"
NOTE_LIMIT = 7_900
"""PostgreSQL refuses a notification payload of 8,000 bytes or more."""
SET_ASIDE = """
INSERT INTO ledger_set_aside (topic_partition, topic_offset, record_key, record, mission_id,
                              reason, detail)
VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING
"""


def storable_json(document: object) -> tuple[str, bool]:
    """JSON jsonb accepts, and whether it is exact (unstorable characters become U+FFFD).
    The common case is one orjson pass (`storable_json_bytes`); a maybe (a lone
    surrogate, NUL, an integer past 64 bits, which json writes) cleans the document."""
    written = storable_json_bytes(document)
    if written is not None:
        return written.decode(), True
    clean, changed = cleaned_document(document)
    return json.dumps(clean), changed == 0


def outcomes_note(items: list[ProjectedEvent]) -> str:
    """What the batch says of the commands that caused its events, as the notification's
    payload: JSON mapping each command id to its rejection ("reason: detail") or null
    (applied), what `projections.queries.outcomes_of` would read from the archive after
    the commit (a rejection first). The root answers its waiting requests from it without
    that query; an empty note (too long for a notification) sends it to the query."""
    outcomes: dict[str, str | None] = {}
    for item in items:
        body, caused_by = item.event.body, item.event.meta.causation_id
        if isinstance(body, CommandRejected):
            outcomes[caused_by] = f"{body.reason}: {body.detail}"
        else:
            outcomes.setdefault(caused_by, None)
    note = orjson.dumps(outcomes).decode()
    return note if len(note.encode()) <= NOTE_LIMIT else ""


class EventArchive(Projection[RecordedEvent]):
    """Projection `event_archive` into `ledger_events`."""

    name = "event_archive"
    rows_per_key = True
    tables: tuple[str, ...] = ()
    rebuildable = False

    def writes(self, item: ProjectedEvent) -> list[Write]:
        meta = item.event.meta
        data, exact = storable_json(item.event.body.data())
        return [
            (
                INSERT,
                (
                    meta.mission_id,
                    meta.sequence,
                    meta.event_id,
                    meta.event_type,
                    meta.occurred_at,
                    meta.causation_id,
                    meta.correlation_id,
                    meta.trace_id,
                    meta.actor,
                    meta.prev_hash,
                    meta.hash,
                    data,
                    item.raw,
                    item.partition,
                    item.offset,
                    exact,
                ),
            )
        ]

    def batch_writes(self, items: list[ProjectedEvent]) -> list[Write]:
        """Announce the batch: PostgreSQL delivers the notification when (and only if) the
        batch's transaction commits, views and archive together (a record applied alone
        in the careful pass is announced in its own savepoint: only if it was archived)."""
        return [(NOTIFY, (PROJECTED_CHANNEL, outcomes_note(items)))] if items else []

    async def admit(
        self, connection: Connection, items: list[ProjectedEvent], batch: dict[str, Any]
    ) -> tuple[list[ProjectedEvent], list[Unusable]]:
        """The events that are their missions' next links; the rest with why. The views
        that follow learn from `batch` which positions will be archived (`FollowsArchive`):
        none of those refused; all of those admitted when the batch is applied without
        savepoints (any write failing rolls it all back), else they look them up."""
        missions = sorted({item.event.meta.mission_id for item in items})
        history = History()
        for row in await connection.fetch(HEADS, missions):
            history.heads[row["mission_id"]] = (row["sequence"], row["hash"])
        admitted: list[ProjectedEvent] = []
        refused: list[Unusable] = []
        for item in items:
            why = history.admit(item.event)
            if why is None:
                admitted.append(item)
            else:
                refused.append(
                    Unusable(
                        item.partition,
                        item.offset,
                        item.record_key,
                        item.raw,
                        item.key,
                        "not_history",
                        why,
                    )
                )
        archived: dict[tuple[int, int], bool] = batch.setdefault("archived", {})
        archived.update(((item.partition, item.offset), False) for item in refused)
        if not batch.get("careful", True):
            archived.update(((item.partition, item.offset), True) for item in admitted)
        return admitted, refused

    def set_aside(self, record: Unusable) -> list[Write]:
        args = (
            record.partition,
            record.offset,
            record.record_key,
            record.raw,
            record.mission_id,
            record.reason,
            record.detail[:2_000],
        )
        return [(SET_ASIDE, args)]


class FollowsArchive(Projection[RecordedEvent]):
    """A view of `mission.events` that applies exactly the events the archive holds."""

    async def admit(
        self, connection: Connection, items: list[ProjectedEvent], batch: dict[str, Any]
    ) -> tuple[list[ProjectedEvent], list[Unusable]]:
        archived: dict[tuple[int, int], bool] = batch.setdefault("archived", {})
        positions = [(item.partition, item.offset) for item in items]
        unknown = [position for position in positions if position not in archived]
        if unknown:  # looked up once per batch, for whichever view asks first
            partitions, offsets = zip(*unknown, strict=True)
            rows = await connection.fetch(ARCHIVED, list(partitions), list(offsets))
            found = {(row["topic_partition"], row["topic_offset"]) for row in rows}
            archived.update((position, position in found) for position in unknown)
        return [item for item, at in zip(items, positions, strict=True) if archived[at]], []
