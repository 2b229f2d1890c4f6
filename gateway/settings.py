"""The root API's settings: the spec's root environment contract plus auth and port."""

from __future__ import annotations

import hmac

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator, model_validator

from gateway.console.session import SessionCodec, session_secret
from gateway.keys import LOCAL_API_KEYS, Caller, parse_api_keys
from infra.config import CommonSettings, ConfigurationError
from ledger.authority import (
    LOCAL_KEY_ID,
    LOCAL_SIGNING_KEY,
    LOCAL_VERIFY_KEYS,
    NAME_PATTERN,
    OperatorSigner,
    parse_verify_keys,
    trusts_local_key,
)
from ledger.history_limit import DEFAULT_MAX_EVENTS

LOCAL_COLONY_KEY = "local-colony-key"


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
    OPERATOR_SIGNING_KEY: SecretStr = SecretStr(LOCAL_SIGNING_KEY)
    OPERATOR_SIGNING_KEY_ID: str = Field(default=LOCAL_KEY_ID, pattern=NAME_PATTERN)
    SYNC_WAIT_MS: int = Field(default=1_500, ge=0, le=30_000)
    VELOCITY_ROLLOUT_STEP: int = Field(default=6, ge=1, le=6)
    MAX_ARTIFACT_BYTES: int = Field(default=1_048_576, gt=0, le=64 * 1_048_576)
    MAX_REQUEST_BYTES: int = Field(default=65_536, ge=1_024, le=16 * 1_048_576)
    RELEASE_EVIDENCE_KEYS: str = LOCAL_VERIFY_KEYS
    """key_id:public_key of the roots whose signed gate reports count as evidence here
    (in production: staging's root, from `velocity keys operator` there)."""
    CONSOLE_SESSION_SECRET: SecretStr | None = None
    CONSOLE_SESSION_TTL_S: int = Field(default=28_800, ge=60, le=7 * 86_400)
    MISSION_MAX_EVENTS: int = Field(default=DEFAULT_MAX_EVENTS, ge=100)
    """The decider's limit (ledger/history_limit.py), read here too: MCP calls about a
    mission whose history is full are counted as metric samples only, not sent to the
    ledger to be set aside as dead letters one call at a time."""

    @field_validator("VELOCITY_API_KEYS")
    @classmethod
    def _keys_parse(cls, value: SecretStr) -> SecretStr:
        parse_api_keys(value.get_secret_value())
        return value

    @field_validator("RELEASE_EVIDENCE_KEYS")
    @classmethod
    def _evidence_keys_parse(cls, value: str) -> str:
        parse_verify_keys(value)
        return value

    @field_validator("OPERATOR_SIGNING_KEY")
    @classmethod
    def _signing_key_parses(cls, value: SecretStr) -> SecretStr:
        OperatorSigner(LOCAL_KEY_ID, value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _no_local_secrets_outside_local(self) -> RootSettings:
        self.require_explicit_outside_local(
            "COLONY_SERVICE_BASE_URL",
            "COLONY_SERVICE_API_KEY",
            "VELOCITY_API_KEYS",
            "OPERATOR_SIGNING_KEY",
            "OPERATOR_SIGNING_KEY_ID",
        )
        if self.VELOCITY_ENV == "local":
            return self
        if self.VELOCITY_ENV == "production" and trusts_local_key(self.RELEASE_EVIDENCE_KEYS):
            raise ConfigurationError(
                "RELEASE_EVIDENCE_KEYS: trusts the public local key in production;"
                " set staging's root key"
            )
        local_keys = set(parse_api_keys(LOCAL_API_KEYS))
        if local_keys & set(self.api_keys):
            raise ConfigurationError(
                f"VELOCITY_API_KEYS: uses a documented local key in {self.VELOCITY_ENV}"
            )
        for name, local in (
            ("COLONY_SERVICE_API_KEY", LOCAL_COLONY_KEY),
            ("OPERATOR_SIGNING_KEY", LOCAL_SIGNING_KEY),
        ):
            secret: SecretStr = getattr(self, name)
            if hmac.compare_digest(secret.get_secret_value(), local):
                raise ConfigurationError(
                    f"{name}: must be set in {self.VELOCITY_ENV} (the local default is public)"
                )
        return self

    @property
    def api_keys(self) -> dict[str, Caller]:
        """Key -> caller (role and name), as configured."""
        return parse_api_keys(self.VELOCITY_API_KEYS.get_secret_value())

    @property
    def console_sessions(self) -> SessionCodec:
        """The console's session codec (gateway/console/session.py)."""
        configured = self.CONSOLE_SESSION_SECRET
        secret = session_secret(
            configured.get_secret_value() if configured else None,
            self.VELOCITY_API_KEYS.get_secret_value(),
        )
        return SessionCodec(secret, self.CONSOLE_SESSION_TTL_S, self.api_keys)

    @property
    def signer(self) -> OperatorSigner:
        return OperatorSigner(
            self.OPERATOR_SIGNING_KEY_ID, self.OPERATOR_SIGNING_KEY.get_secret_value()
        )
