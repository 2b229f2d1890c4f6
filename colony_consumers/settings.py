"""The colony service's settings: the spec's colony environment contract."""

from __future__ import annotations

import hmac

from pydantic import AnyHttpUrl, Field, SecretStr, model_validator

from infra.config import CommonSettings, ConfigurationError

LOCAL_ROOT_KEY = "local-colony-root-key"
LOCAL_COLONY_KEY = "local-colony-key"


class ColonySettings(CommonSettings):
    """Settings of the colony service (colony_consumers/)."""

    PORT: int = Field(default=8100, ge=1, le=65535)
    HOST: str = "127.0.0.1"
    ROOT_API_BASE_URL: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8000")
    ROOT_API_KEY: SecretStr = SecretStr(LOCAL_ROOT_KEY)
    COLONY_SERVICE_API_KEY: SecretStr = SecretStr(LOCAL_COLONY_KEY)
    DEFAULT_MODEL_ROUTE: str = Field(default="local", min_length=1)
    RESEARCH_PROVIDER: str = Field(default="local", min_length=1)
    BROWSER_PROVIDER: str = Field(default="none", min_length=1)
    MAX_CONCURRENT_MISSIONS: int = Field(default=20, gt=0, le=10_000)
    MAX_WORKERS_PER_MISSION: int = Field(default=4, gt=0, le=256)
    MISSION_TIMEOUT_MS: int = Field(default=600_000, gt=0)
    TASK_TIMEOUT_MS: int = Field(default=120_000, gt=0)
    COLONY_REACTORS: bool = True
    COLONY_GROUP_ID: str = "velocity-colony"
    AUTONOMOUS_RESEARCH: bool = False
    PROVIDER_RETRIES: int = Field(default=2, ge=0, le=10)
    KAFKA_SESSION_TIMEOUT_MS: int = Field(default=10_000, ge=1_000)

    @model_validator(mode="after")
    def _consistent(self) -> ColonySettings:
        if self.TASK_TIMEOUT_MS > self.MISSION_TIMEOUT_MS:
            raise ConfigurationError(
                f"TASK_TIMEOUT_MS: {self.TASK_TIMEOUT_MS} exceeds MISSION_TIMEOUT_MS"
                f" ({self.MISSION_TIMEOUT_MS}); a task cannot outlive its mission"
            )
        if self.AUTONOMOUS_RESEARCH and self.VELOCITY_ENV == "production":
            raise ConfigurationError(
                "AUTONOMOUS_RESEARCH: production never runs external research on its own"
                " (spec section 8), whatever the rollout step"
            )
        self.require_explicit_outside_local(
            "ROOT_API_BASE_URL", "ROOT_API_KEY", "COLONY_SERVICE_API_KEY"
        )
        if self.VELOCITY_ENV != "local":
            for name, local in (
                ("ROOT_API_KEY", LOCAL_ROOT_KEY),
                ("COLONY_SERVICE_API_KEY", LOCAL_COLONY_KEY),
            ):
                secret: SecretStr = getattr(self, name)
                if hmac.compare_digest(secret.get_secret_value(), local):
                    raise ConfigurationError(
                        f"{name}: must be set in {self.VELOCITY_ENV} (the local default is public)"
                    )
        return self
