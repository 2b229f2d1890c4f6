"""The projector process's settings."""

from __future__ import annotations

from pydantic import Field

from infra.config import CommonSettings


class ProjectorSettings(CommonSettings):
    """Settings of `python -m projections.projector`."""

    PROJECTOR_GROUP_ID: str = "velocity-projector"
    KAFKA_SESSION_TIMEOUT_MS: int = Field(default=10_000, ge=1_000)
    PROJECTOR_MAX_BATCH: int = Field(default=1_000, gt=0)
