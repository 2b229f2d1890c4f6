"""The missions projection: one row per mission, as GET /missions/{id} shows it."""

from __future__ import annotations

from infra.database import Connection
from ledger.events import MissionRequested
from projections.projection import ProjectedEvent

INSERT_REQUESTED = """
INSERT INTO missions (
    mission_id, mission_type, mode, environment, objective, status, stage, time_budget_ms,
    token_budget, requested_by, correlation_id, trace_id, created_at, updated_at,
    last_sequence, last_hash
) VALUES ($1, $2, $3, $4, $5, 'requested', 'intake', $6, $7, $8, $9, $10, $11, $11, $12, $13)
ON CONFLICT (mission_id) DO NOTHING
"""

ADVANCE = """
UPDATE missions SET last_sequence = $2, last_hash = $3, updated_at = $4
WHERE mission_id = $1 AND last_sequence < $2
"""


class MissionsProjection:
    """Projection `missions` into the `missions` table."""

    name = "missions"
    tables: tuple[str, ...] = ("missions",)
    rebuildable = True

    async def apply(self, connection: Connection, events: list[ProjectedEvent]) -> None:
        for item in events:
            meta, body = item.event.meta, item.event.body
            if isinstance(body, MissionRequested):
                await connection.execute(
                    INSERT_REQUESTED,
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
                )
            else:
                await connection.execute(
                    ADVANCE, meta.mission_id, meta.sequence, meta.hash, meta.occurred_at
                )
