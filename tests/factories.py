"""Builders for commands in tests: random ids, sensible defaults, override what matters."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from ledger.commands import Command, CommandBody, CommandMeta, RequestMission


def command(
    mission_id: str,
    body: CommandBody,
    command_id: str | None = None,
    actor: str = "colony:test",
    issued_at: datetime | None = None,
) -> Command:
    return Command(
        meta=CommandMeta(
            command_id=command_id or str(uuid.uuid4()),
            mission_id=mission_id,
            issued_at=issued_at or datetime.now(UTC),
            correlation_id=mission_id,
            trace_id=uuid.uuid4().hex,
            actor=actor,
        ),
        body=body,
    )


def request_body(**overrides: Any) -> RequestMission:
    fields: dict[str, Any] = {
        "mission_type": "crm",
        "mode": "assisted",
        "objective": "Qualify Northwind Traders",
        "environment": "local",
        "time_budget_ms": 60_000,
        "token_budget": 10_000,
    }
    return RequestMission(**(fields | overrides))
