"""The missions projection: one row per mission, as GET /missions and /missions/{id} show it.

Status and stage come from `ledger.state.status_change`, the same table the decider's
`evolve` uses, so the view cannot disagree with the ledger about where a mission is.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import singledispatch

from ledger.events import (
    BudgetUsed,
    CommandRejected,
    EventBody,
    EventMeta,
    MissionCompleted,
    MissionFailed,
    MissionReplayRequested,
    MissionRequested,
    MissionTimedOut,
    ReviewerPacketRecorded,
    TaskSucceeded,
    WritebackExecuted,
    WritebackFailed,
    WritebackRejected,
)
from ledger.state import TERMINAL_STATUSES, status_change
from projections.archive import FollowsArchive
from projections.projection import ProjectedEvent, Write

INSERT = """
INSERT INTO missions (
    mission_id, mission_type, mode, environment, objective, status, stage, time_budget_ms,
    token_budget, requested_by, correlation_id, trace_id, created_at, updated_at, status_since,
    last_sequence, last_hash, project_id, lead_company, lead_contact, replay_of
) VALUES ($1, $2, $3, $4, $5, 'requested', 'intake', $6, $7, $8, $9, $10, $11, $11, $11,
          $12, $13, $14, $15, $16, $17)
"""
ADVANCE = """
UPDATE missions SET last_sequence = $2, last_hash = $3, updated_at = $4,
       traceparent = COALESCE($5, traceparent)
WHERE mission_id = $1 AND last_sequence <= $2
"""
MOVE = """
UPDATE missions SET status = $2, stage = $3, status_since = $4,
       completed_at = CASE WHEN $5 THEN $4 ELSE completed_at END
WHERE mission_id = $1
"""
SETTLE_WRITEBACKS = """
UPDATE missions SET status = 'in_review', stage = 'writeback', status_since = $2
WHERE mission_id = $1 AND status = 'awaiting_approval'
  AND NOT EXISTS (SELECT 1 FROM approvals a WHERE a.mission_id = $1 AND a.status = 'pending')
"""
BUDGET = "UPDATE missions SET tokens_used = $2, time_used_ms = $3 WHERE mission_id = $1"
TASK_USE = """
UPDATE missions SET tokens_used = tokens_used + $2, time_used_ms = time_used_ms + $3
WHERE mission_id = $1
"""
VERDICT = "UPDATE missions SET verdict = $2, output = $3 WHERE mission_id = $1"
OUTPUT = "UPDATE missions SET output = $2 WHERE mission_id = $1"
FAILURE = "UPDATE missions SET failure_reason = $2 WHERE mission_id = $1"
REJECTION = "UPDATE missions SET last_rejection = $2 WHERE mission_id = $1"
REPLAYED = "UPDATE missions SET replayed_as = array_append(replayed_as, $2) WHERE mission_id = $1"


@singledispatch
def specific(body: EventBody, meta: EventMeta) -> list[Write]:
    """Writes particular to an event type (beyond status and position)."""
    return []


@specific.register
def _requested(body: MissionRequested, meta: EventMeta) -> list[Write]:
    args = (
        meta.mission_id,
        body.mission_type,
        body.mode,
        body.environment,
        body.objective,
        body.time_budget_ms,
        body.token_budget,
        meta.actor,
        meta.correlation_id,
        meta.trace_id,
        meta.occurred_at,
        meta.sequence,
        meta.hash,
        body.project_id,
        body.lead_company,
        body.lead_contact,
        body.replay_of,
    )
    return [(INSERT, args)]


@specific.register
def _packet(body: ReviewerPacketRecorded, meta: EventMeta) -> list[Write]:
    return [(VERDICT, (meta.mission_id, body.verdict, body.output))]


@specific.register
def _completed(body: MissionCompleted, meta: EventMeta) -> list[Write]:
    return [(OUTPUT, (meta.mission_id, body.output))]


@specific.register
def _failed(body: MissionFailed, meta: EventMeta) -> list[Write]:
    return [(FAILURE, (meta.mission_id, body.reason))]


@specific.register
def _timed_out(body: MissionTimedOut, meta: EventMeta) -> list[Write]:
    return [(FAILURE, (meta.mission_id, f"timed out in stage {body.stage}"))]


@specific.register
def _rejected(body: CommandRejected, meta: EventMeta) -> list[Write]:
    return [(REJECTION, (meta.mission_id, f"{body.command_type}: {body.reason}"))]


@specific.register
def _replayed(body: MissionReplayRequested, meta: EventMeta) -> list[Write]:
    return [(REPLAYED, (meta.mission_id, body.new_mission_id))]


@specific.register(WritebackRejected)
@specific.register(WritebackExecuted)
@specific.register(WritebackFailed)
def _writeback_settled(body: EventBody, meta: EventMeta) -> list[Write]:
    return [(SETTLE_WRITEBACKS, (meta.mission_id, meta.occurred_at))]


def advance(item: ProjectedEvent) -> tuple[object, ...]:
    meta = item.event.meta
    return (meta.mission_id, meta.sequence, meta.hash, meta.occurred_at, item.traceparent)


@dataclass
class Use:
    """A mission's tokens and time after a batch: the last BudgetUsed's totals (`total`,
    absolute, as the ledger's state counts them) plus what tasks that succeeded after it
    used; without a BudgetUsed in the batch, only what to add to the stored figures."""

    total: tuple[int, int] | None = None
    added: tuple[int, int] = (0, 0)

    def write(self, mission_id: str) -> Write:
        tokens, time_ms = self.added
        if self.total is None:
            return (TASK_USE, (mission_id, tokens, time_ms))
        return (BUDGET, (mission_id, self.total[0] + tokens, self.total[1] + time_ms))


def use_after(items: list[ProjectedEvent]) -> dict[str, Use]:
    """Each mission's use after the batch, from its BudgetUsed and TaskSucceeded events in
    order: one statement per mission instead of one per event (a long mission records
    its budget use often)."""
    uses: dict[str, Use] = {}
    for item in items:
        body = item.event.body
        if isinstance(body, BudgetUsed):
            uses[item.key] = Use(total=(body.tokens_total, body.time_total_ms))
        elif isinstance(body, TaskSucceeded):
            use = uses.setdefault(item.key, Use())
            use.added = (use.added[0] + body.tokens_used, use.added[1] + body.duration_ms)
    return uses


class MissionsProjection(FollowsArchive):
    """Projection `missions` into the `missions` table."""

    name = "missions"
    rows_per_key = True
    tables: tuple[str, ...] = ("missions",)

    def writes(self, item: ProjectedEvent) -> list[Write]:
        meta, body = item.event.meta, item.event.body
        writes = specific(body, meta)
        moved = status_change(body)
        if moved is not None and not isinstance(body, MissionRequested):
            status, stage = moved
            final = status in TERMINAL_STATUSES
            writes.append((MOVE, (meta.mission_id, status, stage, meta.occurred_at, final)))
        return writes

    def batch_writes(self, items: list[ProjectedEvent]) -> list[Write]:
        """Each mission's position after the batch (its last event's sequence, hash and
        trace context) and its tokens and time used (`use_after`)."""
        last = {item.event.meta.mission_id: item for item in items}
        uses = use_after(items)
        return [(ADVANCE, advance(item)) for item in last.values()] + [
            use.write(mission_id) for mission_id, use in uses.items()
        ]
