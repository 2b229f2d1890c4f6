"""The colony service's settings: the spec's colony environment contract."""

from __future__ import annotations

import hmac

import httpx
from pydantic import AnyHttpUrl, Field, SecretStr, model_validator

from infra.config import CommonSettings, ConfigurationError

LOCAL_ROOT_KEY = "local-colony-root-key"
LOCAL_COLONY_KEY = "local-colony-key"
MCP_PREFIX = "mcp+"
MCP_EXAMPLE = "e.g. mcp+http://127.0.0.1:8765/mcp"


def mcp_endpoint(setting: str) -> str | None:
    """The HTTP endpoint of the MCP server RESEARCH_PROVIDER names (`mcp+http://...` or
    `mcp+https://...`, the prefix stripped); None when it names no MCP server. The
    setting's value is never echoed: an endpoint may carry credentials."""
    if not setting.startswith(MCP_PREFIX):
        return None
    endpoint = setting.removeprefix(MCP_PREFIX)
    try:
        url = httpx.URL(endpoint)
    except httpx.InvalidURL as error:
        raise ConfigurationError(
            f"RESEARCH_PROVIDER: the MCP endpoint is not a URL ({error}; {MCP_EXAMPLE})"
        ) from error
    if url.scheme not in ("http", "https"):
        raise ConfigurationError(
            f"RESEARCH_PROVIDER: an MCP server is reached over http or https ({MCP_EXAMPLE})"
        )
    if not url.host:
        raise ConfigurationError(
            f"RESEARCH_PROVIDER: the MCP endpoint names no host ({MCP_EXAMPLE})"
        )
    return endpoint


class ColonySettings(CommonSettings):
    """Settings of the colony service (colony_consumers/)."""

    PORT: int = Field(default=8100, ge=1, le=65535)
    HOST: str = "127.0.0.1"
    ROOT_API_BASE_URL: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8000")
    ROOT_API_KEY: SecretStr = SecretStr(LOCAL_ROOT_KEY)
    COLONY_SERVICE_API_KEY: SecretStr = SecretStr(LOCAL_COLONY_KEY)
    DEFAULT_MODEL_ROUTE: str = Field(default="local", min_length=1)
    RESEARCH_PROVIDER: str = Field(default="local", min_length=1)
    MCP_RESEARCH_TOOL: str = Field(default="search", min_length=1)
    """The MCP server's tool research calls when RESEARCH_PROVIDER is `mcp+http(s)://...`."""
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
        mcp_endpoint(self.RESEARCH_PROVIDER)  # raises on a malformed MCP endpoint
        if any(character.isspace() for character in self.MCP_RESEARCH_TOOL):
            raise ConfigurationError(
                "MCP_RESEARCH_TOOL: an MCP tool name has no spaces (the default is search)"
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

    @property
    def research_mcp_tool(self) -> str | None:
        """The MCP tool research goes through; None when research is not an MCP server."""
        is_mcp = self.RESEARCH_PROVIDER.startswith(MCP_PREFIX)
        return self.MCP_RESEARCH_TOOL if is_mcp else None
