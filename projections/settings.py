"""The projector process's settings."""

from __future__ import annotations

from pydantic import Field

from infra.config import CommonSettings
from projections.metric_aggregates import SeriesLimits


class ProjectorSettings(CommonSettings):
    """Settings of `python -m projections.projector`."""

    PROJECTOR_GROUP_ID: str = "velocity-projector"
    KAFKA_SESSION_TIMEOUT_MS: int = Field(default=10_000, ge=1_000)
    PROJECTOR_MAX_BATCH: int = Field(default=1_000, gt=0)
    METRICS_MAX_COUNTER_SERIES: int = Field(default=SeriesLimits.counters, ge=1, le=100_000)
    """Label combinations each stored counter family keeps; samples of further ones count
    in the family's overflow series (projections/metric_aggregates.py). `velocity
    projections retry` reads it too, to count a parked sample as the projector would."""
    METRICS_MAX_HISTOGRAM_SERIES: int = Field(default=SeriesLimits.histograms, ge=1, le=10_000)
    """The same for each histogram family (a series is 23 lines of every scrape)."""

    METRICS_SAMPLE_RETENTION_DAYS: int = Field(default=8, ge=8, le=3_650)
    """Days each metric sample's row is kept (projections/metric_retention.py); the counts
    it added stay. At least as long as colony.metrics keeps its records (a week) and a
    day: a sample read again from the topic must still be known, or it would count twice."""

    @property
    def series_limits(self) -> SeriesLimits:
        return SeriesLimits(self.METRICS_MAX_COUNTER_SERIES, self.METRICS_MAX_HISTOGRAM_SERIES)
