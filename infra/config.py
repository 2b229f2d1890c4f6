"""Settings every Velocity process shares, and the one way to load them.

Each process has exactly one pydantic-settings model (a subclass of
:class:`CommonSettings`), read once at start through :func:`load_settings`. A bad or
missing value stops the process with one line naming the variable, exit code 2, and
no traceback: operators read that line in a deploy log, not a stack dump.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal, NoReturn, TypeVar

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["local", "staging", "production"]
KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaSaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

S = TypeVar("S", bound="CommonSettings")


class ConfigurationError(ValueError):
    """A setting that is present but unusable; the message names the variable."""


class CommonSettings(BaseSettings):
    """Where the process runs and which broker and database it talks to.

    KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL are empty locally: `velocity stack run`
    then starts the embedded broker and PostgreSQL and hands their addresses to every
    service it launches. Staging and production must name real infrastructure.
    """

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", frozen=True)

    VELOCITY_ENV: Environment = "local"
    VELOCITY_DATA_DIR: Path = Path(".velocity")
    KAFKA_BOOTSTRAP_SERVERS: str | None = None
    KAFKA_SECURITY_PROTOCOL: KafkaSecurityProtocol = "PLAINTEXT"
    KAFKA_SASL_MECHANISM: KafkaSaslMechanism | None = None
    KAFKA_SASL_USERNAME: str | None = None
    KAFKA_SASL_PASSWORD: SecretStr | None = None
    KAFKA_SSL_CAFILE: Path | None = None
    KAFKA_REPLICATION_FACTOR: int = Field(default=1, ge=1, le=7)
    KAFKA_TOPIC_PREFIX: str = Field(default="", pattern=r"^[A-Za-z0-9._-]*$")
    KAFKA_REQUEST_TIMEOUT_MS: int = Field(default=40_000, ge=1_000, le=600_000)
    KAFKA_FETCH_WAIT_MS: int = Field(default=25, ge=1, le=60_000)
    """How long a consumer's fetch may wait at the broker for records. Apache Kafka answers
    as soon as a record arrives, so there a long wait (500) costs no latency and spares
    empty fetches. The embedded broker does not: it looks again at halving intervals of the
    wait, so a record waits up to about half of it, at every hop of a mission (decider,
    projector, colony); a short wait means more empty fetches, each costing the broker and
    the consumer CPU. 25 ms (twentieth session, two interleaved runs each at 200 `POST
    /missions` a second): p99 39 to 41 ms against 62 to 63 at 50, for 5.5 to 5.9 ms of CPU a
    request against 4.6 to 4.8 (20 ms bought 2 ms more for 0.5 ms more CPU); a lone Oracle
    mission's p50 146 to 154 ms against 231 to 242; 100 concurrent missions about even
    within the runs' noise; an idle stack 18 % of a core against 11 %. With 50 the p99 goal
    (< 50 ms) was out of reach; the thirteenth session chose 50 when 200 requests a second
    used both cores, and a shorter wait then only added CPU to the queue."""
    DATABASE_URL: SecretStr | None = None
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    LOG_FORMAT: Literal["text", "json"] | None = None
    OTEL_EXPORTER_OTLP_ENDPOINT: str | None = Field(default=None, pattern=r"^https?://\S+$")
    """OTLP/HTTP collector base URL (spans go to <it>/v1/traces); unset, nothing is exported."""
    OTEL_TRACES_SAMPLER_ARG: float = Field(default=1.0, ge=0.0, le=1.0)
    """Share of new traces recorded when exporting (a caller's sampled flag is followed)."""

    @model_validator(mode="after")
    def _real_infrastructure_outside_local(self) -> CommonSettings:
        if self.VELOCITY_ENV != "local":
            for name in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL"):
                if getattr(self, name) is None:
                    raise ConfigurationError(
                        f"{name}: required when VELOCITY_ENV={self.VELOCITY_ENV}"
                        " (the embedded stack is for local only)"
                    )
        if self.KAFKA_SECURITY_PROTOCOL.startswith("SASL_"):
            for name in ("KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"):
                if getattr(self, name) is None:
                    raise ConfigurationError(
                        f"{name}: required when KAFKA_SECURITY_PROTOCOL="
                        f"{self.KAFKA_SECURITY_PROTOCOL}"
                    )
        if self.KAFKA_FETCH_WAIT_MS >= self.KAFKA_REQUEST_TIMEOUT_MS:
            raise ConfigurationError(
                f"KAFKA_FETCH_WAIT_MS: {self.KAFKA_FETCH_WAIT_MS} must be shorter than"
                f" KAFKA_REQUEST_TIMEOUT_MS ({self.KAFKA_REQUEST_TIMEOUT_MS}): a fetch that"
                " waits that long would time out"
            )
        return self

    def require_explicit_outside_local(self, *names: str) -> None:
        """Refuse local defaults for `names` in staging and production.

        Local defaults point at 127.0.0.1 and use documented keys; in a shared
        environment silently falling back to them would be an outage or a breach.
        """
        if self.VELOCITY_ENV == "local":
            return
        for name in names:
            if name not in self.model_fields_set:
                raise ConfigurationError(f"{name}: required when VELOCITY_ENV={self.VELOCITY_ENV}")

    @property
    def log_format(self) -> Literal["text", "json"]:
        """JSON in staging and production, readable text locally, unless LOG_FORMAT says."""
        if self.LOG_FORMAT is not None:
            return self.LOG_FORMAT
        return "text" if self.VELOCITY_ENV == "local" else "json"

    def require_infrastructure(self) -> tuple[str, str]:
        """The broker and database addresses a service cannot run without, or exit 2."""
        if self.KAFKA_BOOTSTRAP_SERVERS is None:
            fail_configuration(
                "KAFKA_BOOTSTRAP_SERVERS: not set (`velocity stack run` sets it for the"
                " embedded broker)"
            )
        if self.DATABASE_URL is None:
            fail_configuration(
                "DATABASE_URL: not set (`velocity stack run` sets it for the embedded PostgreSQL)"
            )
        return self.KAFKA_BOOTSTRAP_SERVERS, self.DATABASE_URL.get_secret_value()


def _secret_fields(model: type[BaseSettings]) -> set[str]:
    return {
        name for name, info in model.model_fields.items() if "SecretStr" in str(info.annotation)
    }


def describe_validation_error(error: ValidationError, model: type[BaseSettings]) -> str:
    """One line naming each bad variable and what is wrong; secret values are not echoed."""
    secrets = _secret_fields(model)
    parts = []
    for item in error.errors(include_url=False):
        name = ".".join(str(part) for part in item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        if not name:
            parts.append(message)
            continue
        shown = item.get("input")
        hidden = isinstance(shown, dict) or shown is None or name in secrets
        got = "" if hidden else f" (got {str(shown)[:40]!r})"
        parts.append(f"{name}: {message}{got}")
    return "; ".join(parts)


def load_settings(model: type[S], **overrides: object) -> S:
    """Read the process's settings from the environment, or exit 2 with one clear line."""
    try:
        return model(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        fail_configuration(describe_validation_error(error, model))
    except ConfigurationError as error:
        fail_configuration(str(error))


def fail_configuration(message: str) -> NoReturn:
    """Print the configuration problem on stderr and stop with exit code 2."""
    print(f"velocity: invalid configuration: {message}", file=sys.stderr)  # noqa: T201
    raise SystemExit(2)
