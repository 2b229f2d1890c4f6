"""The root's wait for its commands' outcomes, woken by the projector's commit
notification: applied, rejected by the ledger, or not seen within the wait."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
import orjson
import pytest

from gateway.dependencies import Database, Outages
from gateway.outcomes import Outcome, Outcomes
from ledger.commands import CompleteMission
from projections.archive import PROJECTED_CHANNEL
from projections.queries import outcomes_of
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


async def notify(isolated: Isolated, payload: str) -> None:
    """A commit notification as the projector sends it, from a plain connection."""
    connection = await asyncpg.connect(isolated.database_url)
    try:
        await connection.execute("SELECT pg_notify($1, $2)", PROJECTED_CHANNEL, payload)
    finally:
        await connection.close()


async def test_a_commit_note_answers_the_waiters_it_names_without_the_archive(
    isolated: Isolated,
) -> None:
    """The archive holds nothing of these commands: only the note can answer them."""
    await prepared(isolated)
    database = Database(isolated.database_url, Outages())
    outcomes = Outcomes(database, tick_s=NEVER_S)
    watch = asyncio.create_task(outcomes.run())
    applied_id, rejected_id, other_id = (str(uuid.uuid4()) for _ in range(3))
    try:
        await eventually(listening(outcomes))
        waits = [
            asyncio.create_task(outcomes.wait(command_id, 10))
            for command_id in (applied_id, rejected_id)
        ]
        other = asyncio.create_task(outcomes.wait(other_id, 1.0))
        await asyncio.sleep(0.2)  # waiting (and the startup look done) before the commit
        note = {applied_id: None, rejected_id: "wrong_status: mission is running"}
        await notify(isolated, orjson.dumps(note | {str(uuid.uuid4()): None}).decode())
        applied, rejected = await asyncio.gather(*waits)
        unnamed = await other
    finally:
        watch.cancel()
        await database.close()
    assert applied == Outcome(done=True)
    assert rejected == Outcome(done=False, rejection="wrong_status: mission is running")
    assert unnamed is None
    assert outcomes.waiting == {}


async def test_a_notification_without_a_note_has_the_archive_asked(isolated: Isolated) -> None:
    """A note too long for a notification (sent empty), or a projector of an earlier
    release (its partition), still answers waiters: from the archive."""
    await prepared(isolated)
    database = Database(isolated.database_url, Outages())
    outcomes = Outcomes(database, tick_s=NEVER_S)
    watch = asyncio.create_task(outcomes.run())
    opened = command(str(uuid.uuid4()), request_body())
    try:
        async with ledger_services(isolated), command_sender(isolated) as sender:
            await eventually(listening(outcomes))
            await sender.send(opened)
            await eventually(lambda: outcomes_of(database, [opened.meta.command_id]))
            answers, unmoved = [], []
            for payload in ("", "3"):
                waiting = asyncio.create_task(outcomes.wait(opened.meta.command_id, 10))
                await notify(isolated, orjson.dumps({str(uuid.uuid4()): None}).decode())
                done, _ = await asyncio.wait({waiting}, timeout=0.5)
                unmoved.append(not done)  # a note naming other commands asks nothing
                await notify(isolated, payload)
                answers.append(await waiting)
    finally:
        watch.cancel()
        await database.close()
    assert unmoved == [True, True]
    assert answers == [Outcome(done=True), Outcome(done=True)]
