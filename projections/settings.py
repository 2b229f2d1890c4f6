"""The projector process's settings."""

from __future__ import annotations

from pydantic import Field

from infra.config import CommonSettings
from projections.metric_aggregates import MAX_SERIES


class ProjectorSettings(CommonSettings):
    """Settings of `python -m projections.projector`."""

    PROJECTOR_GROUP_ID: str = "velocity-projector"
    KAFKA_SESSION_TIMEOUT_MS: int = Field(default=10_000, ge=1_000)
    PROJECTOR_MAX_BATCH: int = Field(default=1_000, gt=0)
    METRICS_MAX_SERIES: int = Field(default=MAX_SERIES, ge=1, le=100_000)
    """Label combinations each stored metric family keeps; samples of further ones count
    in the family's overflow series (projections/metric_aggregates.py). `velocity
    projections retry` reads it too, to count a parked sample as the projector would."""
