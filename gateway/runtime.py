"""Everything a request handler may touch, built once per process from RootSettings."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from gateway.dependencies import CommandBus, Database, Outages
from gateway.keys import Caller
from gateway.outcomes import Outcomes
from gateway.settings import RootSettings
from infra.kafka import client_options
from infra.topics import TopicNames
from infra.tracing import current_trace_id
from ledger.authority import OperatorSigner
from ledger.commands import Command, CommandBody


@dataclass
class GatewayRuntime:
    """The root's settings, keys, database, command bus, colony client, and the watch on
    the commands its requests wait for (`run` it while serving)."""

    settings: RootSettings
    signer: OperatorSigner
    database: Database
    commands: CommandBus
    colony: httpx.AsyncClient
    outages: Outages
    outcomes: Outcomes
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    watch: asyncio.Task[None] | None = None

    @classmethod
    def build(cls, settings: RootSettings) -> GatewayRuntime:
        bootstrap, database_url = settings.require_infrastructure()
        outages = Outages()
        topics = TopicNames(settings.KAFKA_TOPIC_PREFIX)
        database = Database(database_url, outages)
        return cls(
            settings=settings,
            signer=settings.signer,
            database=database,
            commands=CommandBus(client_options(settings, bootstrap), topics, outages),
            colony=httpx.AsyncClient(
                base_url=str(settings.COLONY_SERVICE_BASE_URL),
                timeout=settings.COLONY_TIMEOUT_MS / 1000,
                headers={
                    "Authorization": f"Bearer {settings.COLONY_SERVICE_API_KEY.get_secret_value()}"
                },
            ),
            outages=outages,
            outcomes=Outcomes(database),
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

    def start(self) -> None:
        """Watch for the outcomes of the commands requests wait on (until `close`)."""
        self.watch = asyncio.create_task(self.outcomes.run())

    async def close(self) -> None:
        if self.watch is not None:
            self.watch.cancel()
        await self.commands.close()
        await self.database.close()
        await self.colony.aclose()
