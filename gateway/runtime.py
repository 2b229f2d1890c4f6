"""Everything a request handler may touch, built once per process from RootSettings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from gateway.dependencies import CommandBus, Database, Outages
from gateway.settings import Role, RootSettings
from infra.kafka import client_options
from infra.topics import TopicNames


@dataclass
class GatewayRuntime:
    """The root's settings, keys, database, command bus and colony client."""

    settings: RootSettings
    api_keys: dict[str, Role]
    database: Database
    commands: CommandBus
    colony: httpx.AsyncClient
    outages: Outages
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def build(cls, settings: RootSettings) -> GatewayRuntime:
        bootstrap, database_url = settings.require_infrastructure()
        outages = Outages()
        topics = TopicNames(settings.KAFKA_TOPIC_PREFIX)
        return cls(
            settings=settings,
            api_keys=settings.api_keys,
            database=Database(database_url, outages),
            commands=CommandBus(client_options(settings, bootstrap), topics, outages),
            colony=httpx.AsyncClient(
                base_url=str(settings.COLONY_SERVICE_BASE_URL),
                timeout=settings.COLONY_TIMEOUT_MS / 1000,
                headers={
                    "Authorization": f"Bearer {settings.COLONY_SERVICE_API_KEY.get_secret_value()}"
                },
            ),
            outages=outages,
        )

    async def close(self) -> None:
        await self.commands.close()
        await self.database.close()
        await self.colony.aclose()
