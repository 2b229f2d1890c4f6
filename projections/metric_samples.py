"""The metric samples projection: every measurement from colony.metrics, once."""

from __future__ import annotations

import json

from ledger.metrics import Metric
from projections.projection import Projected, Projection, Write

INSERT = """
INSERT INTO metric_samples (metric_id, name, value, labels, mission_id, trace_id, recorded_at)
VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7) ON CONFLICT (metric_id) DO NOTHING
"""


class MetricSamplesProjection(Projection[Metric]):
    """Projection `metric_samples` (a re-sent metric keeps its id and is stored once)."""

    name = "metric_samples"
    tables: tuple[str, ...] = ("metric_samples",)

    def writes(self, item: Projected[Metric]) -> list[Write]:
        metric = item.event
        args = (
            metric.metric_id,
            metric.name,
            metric.value,
            json.dumps(metric.labels),
            metric.mission_id,
            metric.trace_id,
            metric.recorded_at,
        )
        return [(INSERT, args)]
