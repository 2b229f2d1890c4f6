"""The event archive projection: every event, exactly once, append-only, with its bytes.

Auditors query it without Kafka; `velocity ledger verify` checks its chains; the stack
republishes it into an empty broker (ledger/restore.py).
"""

from __future__ import annotations

import json

from projections.projection import ProjectedEvent, Write

INSERT = """
INSERT INTO ledger_events (
    mission_id, sequence, event_id, event_type, occurred_at, causation_id, correlation_id,
    trace_id, actor, prev_hash, hash, data, record, topic_partition, topic_offset
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13, $14, $15)
"""


class EventArchive:
    """Projection `event_archive` into `ledger_events`."""

    name = "event_archive"
    tables: tuple[str, ...] = ()
    rebuildable = False

    def writes(self, item: ProjectedEvent) -> list[Write]:
        meta = item.event.meta
        data = json.dumps(item.event.body.model_dump(mode="json"))
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
                ),
            )
        ]

    def batch_writes(self, items: list[ProjectedEvent]) -> list[Write]:
        return []
