"""Everything a request handler may touch, built once per process from RootSettings."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from gateway.dependencies import CommandBus, Database, Outages
from gateway.keys import Caller
from gateway.settings import RootSettings
from infra.kafka import client_options
from infra.topics import TopicNames
from infra.tracing import current_trace_id
from ledger.authority import OperatorSigner
from ledger.commands import Command, CommandBody


@dataclass
class GatewayRuntime:
    """The root's settings, keys, database, command bus and colony client."""

    settings: RootSettings
    signer: OperatorSigner
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
            signer=settings.signer,
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

    def command(
        self,
        mission_id: str,
        body: CommandBody,
        caller: Caller,
        command_id: str,
        correlation_id: str | None = None,
    ) -> Command:
        """The command `caller` issues, in the active trace (infra/tracing.py); an
        operator's carries this root's signature."""
        command = Command.issue(
            mission_id,
            body,
            command_id=command_id,
            actor=caller.label,
            trace_id=current_trace_id() or uuid.uuid4().hex,
            correlation_id=correlation_id,
        )
        return self.signer.sign(command) if caller.role == "operator" else command

    async def close(self) -> None:
        await self.commands.close()
        await self.database.close()
        await self.colony.aclose()
