"""An empty broker beside a full archive: refused by default, restored on request, and
the decider continues each old mission's sequence and dedupe from the restored log."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from infra.broker import start_broker
from infra.preparation import DivergedLedgerError
from tests.conftest import Isolated
from tests.factories import command, request_body
from tests.integration.conftest import (
    archived,
    command_sender,
    eventually,
    ledger_services,
    prepared,
)

pytestmark = pytest.mark.integration


async def test_empty_broker_is_refused_then_restored_and_sequences_continue(
    isolated: Isolated,
) -> None:
    await prepared(isolated)
    missions = [str(uuid.uuid4()) for _ in range(3)]
    first_commands = [command(m, request_body()) for m in missions]
    async with ledger_services(isolated), command_sender(isolated) as sender:
        await sender.send(*first_commands)
        for mission_id in missions:
            await eventually(lambda m=mission_id: archived(isolated.database_url, m))

    fresh_broker = await asyncio.to_thread(
        start_broker
    )  # memory only: as the embedded broker after a restart
    try:
        emptied = Isolated(
            fresh_broker.bootstrap_servers, isolated.database_url, isolated.topic_prefix
        )
        with pytest.raises(DivergedLedgerError, match="lacks 3 events"):
            await prepared(emptied)
        await prepared(emptied, restore=True)
        await prepared(emptied)  # nothing missing any more

        async with ledger_services(emptied), command_sender(emptied) as sender:
            await sender.send(first_commands[0])  # redelivered: must append nothing
            await sender.send(command(missions[0], request_body()))  # new id: rejected, seq 2
            rows = await eventually(
                lambda: _at_least(archived(isolated.database_url, missions[0]), 2)
            )
    finally:
        fresh_broker.stop()
    assert [r["sequence"] for r in rows] == [1, 2]
    assert rows[1]["event_type"] == "CommandRejected"
    assert rows[1]["prev_hash"] == rows[0]["hash"]


async def _at_least(rows_coro, count: int):  # type: ignore[no-untyped-def]
    rows = await rows_coro
    return rows if len(rows) >= count else None
