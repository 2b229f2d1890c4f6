"""The root's wait for its commands' outcomes, woken by the projector's commit
notification: applied, rejected by the ledger, or not seen within the wait."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import pytest

from gateway.dependencies import Database, Outages
from gateway.outcomes import Outcomes
from ledger.commands import CompleteMission
from tests.conftest import Isolated
from tests.factories import command, request_body
from tests.integration.conftest import command_sender, eventually, ledger_services, prepared

pytestmark = pytest.mark.integration
NEVER_S = 3_600.0
"""A tick that never comes within a test: only the notification can wake a waiter."""


def listening(outcomes: Outcomes) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return outcomes.listening

    return probe


async def test_waiters_learn_what_the_ledger_made_of_their_commands(isolated: Isolated) -> None:
    await prepared(isolated)
    database = Database(isolated.database_url, Outages())
    outcomes = Outcomes(database, tick_s=NEVER_S)
    watch = asyncio.create_task(outcomes.run())
    mission_id = str(uuid.uuid4())
    opened = command(mission_id, request_body())
    early = command(str(uuid.uuid4()), CompleteMission(output="too soon"))
    try:
        async with ledger_services(isolated), command_sender(isolated) as sender:
            await eventually(listening(outcomes))
            waits = [
                asyncio.create_task(outcomes.wait(c.meta.command_id, 20)) for c in (opened, early)
            ]
            await asyncio.sleep(0.2)  # waiting (and the startup look done) before they are sent
            await sender.send(opened, early)
            applied, rejected = await asyncio.gather(*waits)
            unsent = await outcomes.wait(str(uuid.uuid4()), 0.5)
    finally:
        watch.cancel()
        await database.close()
    assert applied is not None and applied.done and applied.rejection is None
    assert rejected is not None and not rejected.done
    assert rejected.rejection and rejected.rejection.startswith("unknown_mission: ")
    assert unsent is None
    assert outcomes.waiting == {}
