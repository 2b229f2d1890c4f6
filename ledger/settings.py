"""The decider process's settings."""

from __future__ import annotations

from pydantic import Field

from infra.config import CommonSettings


class DeciderSettings(CommonSettings):
    """Settings of `python -m ledger.decider`."""

    DECIDER_GROUP_ID: str = "velocity-decider"
    KAFKA_SESSION_TIMEOUT_MS: int = Field(default=10_000, ge=1_000)
    DECIDER_MAX_BATCH: int = Field(default=500, gt=0)
