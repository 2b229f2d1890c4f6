"""The approval queue: every proposed writeback, pending oldest first, and its decision.

A mission that ends while a writeback of it waits (failed, cancelled, timed out: it cannot
complete with one open) withdraws it: nobody can decide it any more (the ledger refuses
commands of an ended mission), so it leaves the queue as `withdrawn`, with why in
`detail`, instead of waiting there for good and holding the backlog alert up."""

from __future__ import annotations

import json
from functools import singledispatch

from ledger.events import (
    ApprovalRequested,
    EventBody,
    EventMeta,
    MissionCancelled,
    MissionFailed,
    MissionTimedOut,
    WritebackApproved,
    WritebackExecuted,
    WritebackFailed,
    WritebackProposed,
    WritebackRejected,
)
from projections.archive import FollowsArchive
from projections.projection import ProjectedEvent, Write, kinds_written_by

PROPOSED = """
INSERT INTO approvals (writeback_id, mission_id, target, record_ref, changes, rationale,
                       status, requested_at)
VALUES ($1, $2, $3, $4, $5::jsonb, $6, 'pending', $7)
"""
SUMMARY = "UPDATE approvals SET summary = $3 WHERE mission_id = $1 AND writeback_id = $2"
DECIDED = """
UPDATE approvals SET status = $3, decided_at = $4, decided_by = $5, reason = $6
WHERE mission_id = $1 AND writeback_id = $2
"""
FINISHED = """
UPDATE approvals SET status = $3, finished_at = $4, detail = $5
WHERE mission_id = $1 AND writeback_id = $2
"""


@singledispatch
def approval_writes(body: EventBody, meta: EventMeta) -> list[Write]:
    return []


@approval_writes.register
def _proposed(body: WritebackProposed, meta: EventMeta) -> list[Write]:
    args = (
        body.writeback_id,
        meta.mission_id,
        body.target,
        body.record_ref,
        json.dumps(body.changes),
        body.rationale,
        meta.occurred_at,
    )
    return [(PROPOSED, args)]


@approval_writes.register
def _requested(body: ApprovalRequested, meta: EventMeta) -> list[Write]:
    return [(SUMMARY, (meta.mission_id, body.writeback_id, body.summary))]


@approval_writes.register
def _approved(body: WritebackApproved, meta: EventMeta) -> list[Write]:
    args = (meta.mission_id, body.writeback_id, "approved", meta.occurred_at)
    return [(DECIDED, (*args, body.decided_by, body.reason))]


@approval_writes.register
def _rejected(body: WritebackRejected, meta: EventMeta) -> list[Write]:
    args = (meta.mission_id, body.writeback_id, "rejected", meta.occurred_at)
    return [(DECIDED, (*args, body.decided_by, body.reason))]


@approval_writes.register
def _executed(body: WritebackExecuted, meta: EventMeta) -> list[Write]:
    args = (meta.mission_id, body.writeback_id, "executed", meta.occurred_at, body.detail)
    return [(FINISHED, args)]


@approval_writes.register
def _failed(body: WritebackFailed, meta: EventMeta) -> list[Write]:
    args = (meta.mission_id, body.writeback_id, "failed", meta.occurred_at, body.detail)
    return [(FINISHED, args)]


WITHDRAWN = """
UPDATE approvals SET status = 'withdrawn', finished_at = $2, detail = $3
WHERE mission_id = $1 AND status = 'pending'
"""


@approval_writes.register
def _mission_ended(
    body: MissionFailed | MissionCancelled | MissionTimedOut, meta: EventMeta
) -> list[Write]:
    return [(WITHDRAWN, (meta.mission_id, meta.occurred_at, why_ended(body)))]


def why_ended(body: MissionFailed | MissionCancelled | MissionTimedOut) -> str:
    """A withdrawn approval's detail: how its mission ended."""
    if isinstance(body, MissionTimedOut):
        return f"the mission timed out in {body.stage} after {body.timeout_ms} ms"
    ended = "failed" if isinstance(body, MissionFailed) else "was cancelled"
    return f"the mission {ended}: {body.reason}"


class ApprovalsProjection(FollowsArchive):
    """Projection `approvals` into the `approvals` table."""

    name = "approvals"
    rows_per_key = True
    tables: tuple[str, ...] = ("approvals",)

    kinds = kinds_written_by(approval_writes)

    def writes(self, item: ProjectedEvent) -> list[Write]:
        return approval_writes(item.event.body, item.event.meta)
