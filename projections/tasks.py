"""The tasks projection: each planned task, its attempts and outcome."""

from __future__ import annotations

from functools import singledispatch

from ledger.events import (
    EventBody,
    EventMeta,
    MissionPlanned,
    TaskFailed,
    TaskRetried,
    TaskStarted,
    TaskSucceeded,
    TaskTimedOut,
)
from projections.archive import FollowsArchive
from projections.projection import ProjectedEvent, Write, kinds_written_by

PLANNED = """
INSERT INTO tasks (mission_id, task_id, kind, description, depends_on, status)
VALUES ($1, $2, $3, $4, $5, 'planned')
"""
STARTED = """
UPDATE tasks SET status = 'running', attempt = $3, worker = $4, started_at = $5,
       finished_at = NULL, error = NULL
WHERE mission_id = $1 AND task_id = $2
"""
SUCCEEDED = """
UPDATE tasks SET status = 'succeeded', finished_at = $3, summary = $4,
       tokens_used = tokens_used + $5, duration_ms = duration_ms + $6, notes = $7
WHERE mission_id = $1 AND task_id = $2
"""
FINISHED_BADLY = """
UPDATE tasks SET status = $3, finished_at = $4, error = $5 WHERE mission_id = $1 AND task_id = $2
"""
RETRIED = "UPDATE tasks SET status = 'planned' WHERE mission_id = $1 AND task_id = $2"


@singledispatch
def task_writes(body: EventBody, meta: EventMeta) -> list[Write]:
    return []


@task_writes.register
def _planned(body: MissionPlanned, meta: EventMeta) -> list[Write]:
    return [
        (PLANNED, (meta.mission_id, t.task_id, t.kind, t.description, t.depends_on))
        for t in body.tasks
    ]


@task_writes.register
def _started(body: TaskStarted, meta: EventMeta) -> list[Write]:
    args = (meta.mission_id, body.task_id, body.attempt, body.worker, meta.occurred_at)
    return [(STARTED, args)]


@task_writes.register
def _succeeded(body: TaskSucceeded, meta: EventMeta) -> list[Write]:
    args = (
        meta.mission_id,
        body.task_id,
        meta.occurred_at,
        body.summary,
        body.tokens_used,
        body.duration_ms,
        body.notes,
    )
    return [(SUCCEEDED, args)]


@task_writes.register
def _failed(body: TaskFailed, meta: EventMeta) -> list[Write]:
    args = (meta.mission_id, body.task_id, "failed", meta.occurred_at, body.error)
    return [(FINISHED_BADLY, args)]


@task_writes.register
def _timed_out(body: TaskTimedOut, meta: EventMeta) -> list[Write]:
    detail = f"timed out after {body.timeout_ms} ms"
    return [
        (FINISHED_BADLY, (meta.mission_id, body.task_id, "timed_out", meta.occurred_at, detail))
    ]


@task_writes.register
def _retried(body: TaskRetried, meta: EventMeta) -> list[Write]:
    return [(RETRIED, (meta.mission_id, body.task_id))]


class TasksProjection(FollowsArchive):
    """Projection `tasks` into the `tasks` table."""

    name = "tasks"
    rows_per_key = True
    tables: tuple[str, ...] = ("tasks",)

    kinds = kinds_written_by(task_writes)

    def writes(self, item: ProjectedEvent) -> list[Write]:
        return task_writes(item.event.body, item.event.meta)
