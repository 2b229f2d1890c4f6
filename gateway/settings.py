"""The root API's settings: the spec's root environment contract plus auth and port."""

from __future__ import annotations

import hmac
from typing import Literal

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator, model_validator

from infra.config import CommonSettings, ConfigurationError

Role = Literal["service", "operator", "auditor"]
ROLES: tuple[Role, ...] = ("service", "operator", "auditor")

# Documented, well-known keys for a laptop; refused outside VELOCITY_ENV=local.
LOCAL_API_KEYS = "service:local-service-key,operator:local-operator-key,auditor:local-auditor-key"
LOCAL_COLONY_KEY = "local-colony-key"


def parse_api_keys(raw: str) -> dict[str, Role]:
    """Turn `role:key,role:key` into key -> role, refusing unknown roles and blank keys."""
    keys: dict[str, Role] = {}
    for position, pair in enumerate(filter(None, (p.strip() for p in raw.split(","))), 1):
        role, sep, key = pair.partition(":")
        if not sep or not key.strip():
            raise ValueError(f"entry {position} is not role:key")
        if role.strip() not in ROLES:
            raise ValueError(f"entry {position} has unknown role {role.strip()!r} (use {ROLES})")
        keys[key.strip()] = role.strip()  # type: ignore[assignment]
    if not keys:
        raise ValueError("no role:key pairs")
    return keys


class RootSettings(CommonSettings):
    """Settings of the FastAPI root (gateway/)."""

    COLONY_SERVICE_BASE_URL: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8100")
    COLONY_SERVICE_API_KEY: SecretStr = SecretStr(LOCAL_COLONY_KEY)
    COLONY_ENABLED: bool = True
    COLONY_TIMEOUT_MS: int = Field(default=5_000, gt=0, le=600_000)
    COLONY_DEFAULT_TIME_BUDGET_MS: int = Field(default=300_000, gt=0)
    COLONY_DEFAULT_TOKEN_BUDGET: int = Field(default=50_000, gt=0)
    ROOT_PORT: int = Field(default=8000, ge=1, le=65535)
    ROOT_HOST: str = "127.0.0.1"
    VELOCITY_API_KEYS: SecretStr = SecretStr(LOCAL_API_KEYS)
    SYNC_WAIT_MS: int = Field(default=1_500, ge=0, le=30_000)
    VELOCITY_ROLLOUT_STEP: int = Field(default=6, ge=1, le=6)
    MAX_ARTIFACT_BYTES: int = Field(default=1_048_576, gt=0, le=64 * 1_048_576)

    @field_validator("VELOCITY_API_KEYS")
    @classmethod
    def _keys_parse(cls, value: SecretStr) -> SecretStr:
        parse_api_keys(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _no_local_secrets_outside_local(self) -> RootSettings:
        self.require_explicit_outside_local(
            "COLONY_SERVICE_BASE_URL", "COLONY_SERVICE_API_KEY", "VELOCITY_API_KEYS"
        )
        if self.VELOCITY_ENV == "local":
            return self
        local_keys = set(parse_api_keys(LOCAL_API_KEYS))
        if local_keys & set(self.api_keys):
            raise ConfigurationError(
                f"VELOCITY_API_KEYS: uses a documented local key in {self.VELOCITY_ENV}"
            )
        if hmac.compare_digest(self.COLONY_SERVICE_API_KEY.get_secret_value(), LOCAL_COLONY_KEY):
            raise ConfigurationError(
                f"COLONY_SERVICE_API_KEY: must be set in {self.VELOCITY_ENV}"
                " (the local default is public)"
            )
        return self

    @property
    def api_keys(self) -> dict[str, Role]:
        """Key -> role, as configured."""
        return parse_api_keys(self.VELOCITY_API_KEYS.get_secret_value())
