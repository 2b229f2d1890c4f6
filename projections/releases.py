"""Release views: gate runs with their checks, and each environment's rollout step."""

from __future__ import annotations

from functools import singledispatch

from ledger.events import (
    EventBody,
    EventMeta,
    GateCheckRecorded,
    GateRunCompleted,
    GateRunStarted,
    RolloutAdvanced,
    RolloutRolledBack,
)
from projections.archive import FollowsArchive
from projections.projection import ProjectedEvent, Write, kinds_written_by

STARTED = """
INSERT INTO gate_runs (run_id, stream_id, version, environment, root_url, started_by, started_at)
VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (run_id) DO NOTHING
"""
CHECKED = """
INSERT INTO gate_checks (stream_id, sequence, gate, check_name, passed, evidence, duration_ms,
                         recorded_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING
"""
COMPLETED = """
UPDATE gate_runs SET completed_at = $2, passed = $3, checks = $4, failed = $5
WHERE stream_id = $1
"""
STEP = """
INSERT INTO rollout_steps (environment, step, changed_at, changed_by, reason, evidence_hash,
                           evidence_run_id)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (environment) DO UPDATE SET step = EXCLUDED.step, changed_at = EXCLUDED.changed_at,
    changed_by = EXCLUDED.changed_by, reason = EXCLUDED.reason,
    evidence_hash = EXCLUDED.evidence_hash, evidence_run_id = EXCLUDED.evidence_run_id
"""
HISTORY = """
INSERT INTO rollout_history (environment, sequence, from_step, to_step, direction, reason,
                             changed_by, changed_at, evidence_hash, evidence_run_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING
"""


@singledispatch
def release_writes(body: EventBody, meta: EventMeta) -> list[Write]:
    return []


@release_writes.register
def _started(body: GateRunStarted, meta: EventMeta) -> list[Write]:
    args = (body.run_id, meta.mission_id, body.version, body.environment, body.root_url)
    return [(STARTED, (*args, meta.actor, meta.occurred_at))]


@release_writes.register
def _checked(body: GateCheckRecorded, meta: EventMeta) -> list[Write]:
    args = (meta.mission_id, meta.sequence, body.gate, body.check, body.passed, body.evidence)
    return [(CHECKED, (*args, body.duration_ms, meta.occurred_at))]


@release_writes.register
def _completed(body: GateRunCompleted, meta: EventMeta) -> list[Write]:
    args = (meta.mission_id, meta.occurred_at, body.passed, body.checks, body.failed)
    return [(COMPLETED, args)]


@release_writes.register
def _moved(body: RolloutAdvanced | RolloutRolledBack, meta: EventMeta) -> list[Write]:
    evidence = (
        (body.evidence_hash, body.evidence_run_id)
        if isinstance(body, RolloutAdvanced)
        else (None, None)
    )
    direction = "advanced" if isinstance(body, RolloutAdvanced) else "rolled_back"
    step = (body.environment, body.to_step, meta.occurred_at, meta.actor, body.reason, *evidence)
    history = (
        body.environment,
        meta.sequence,
        body.from_step,
        body.to_step,
        direction,
        body.reason,
        meta.actor,
        meta.occurred_at,
        *evidence,
    )
    return [(STEP, step), (HISTORY, history)]


class ReleasesProjection(FollowsArchive):
    """Projection `releases` into gate_runs, gate_checks, rollout_steps, rollout_history."""

    name = "releases"
    tables: tuple[str, ...] = ("gate_runs", "gate_checks", "rollout_steps", "rollout_history")

    kinds = kinds_written_by(release_writes)

    def writes(self, item: ProjectedEvent) -> list[Write]:
        return release_writes(item.event.body, item.event.meta)
