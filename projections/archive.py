"""The event archive projection: every event, exactly once, append-only, with its bytes.

Auditors query it without Kafka; `velocity ledger verify` checks its chains; the stack
republishes it into an empty broker (ledger/restore.py). It never parks: an event whose
text jsonb cannot hold is archived with that text replaced (`data_exact` false, the
exact bytes in `record`), and a record that is no link of any chain (undecodable, or a
position already taken: a forgery or a fork) is set aside by offset in
`ledger_set_aside`, so the log can always be republished exactly.
"""

from __future__ import annotations

import json

from ledger.events import RecordedEvent
from ledger.text import cleaned_document
from projections.projection import ProjectedEvent, Projection, Unusable, Write

INSERT = """
INSERT INTO ledger_events (
    mission_id, sequence, event_id, event_type, occurred_at, causation_id, correlation_id,
    trace_id, actor, prev_hash, hash, data, record, topic_partition, topic_offset, data_exact
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13, $14, $15, $16)
"""
SET_ASIDE = """
INSERT INTO ledger_set_aside (topic_partition, topic_offset, record_key, record, mission_id,
                              reason, detail)
VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING
"""


def storable_json(document: object) -> tuple[str, bool]:
    """JSON jsonb accepts, and whether it is exact (unstorable characters become U+FFFD).

    The ASCII-escaped text shows NUL as \\u0000 and surrogates as \\udXXX, so the common
    case costs one substring search, not a walk of the document."""
    text = json.dumps(document)
    if "\\u0000" not in text and "\\ud" not in text:
        return text, True
    clean, changed = cleaned_document(document)
    return json.dumps(clean), changed == 0


class EventArchive(Projection[RecordedEvent]):
    """Projection `event_archive` into `ledger_events`."""

    name = "event_archive"
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
