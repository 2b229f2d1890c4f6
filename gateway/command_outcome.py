"""Sending a command and waiting, briefly, for what the ledger made of it.

The root answers from projections. After the broker acknowledged a command, it polls
until the projection shows the effect (`done`), or the archive holds a CommandRejected
caused by this command (a 409 for the client), or SYNC_WAIT_MS passes (202: accepted,
look again at the link).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway.problems import ProblemError
from gateway.runtime import GatewayRuntime
from ledger.commands import Command
from projections.queries import rejection_of

ID_NAMESPACE = uuid.UUID("0b7c2f8e-51a4-4d8e-9a61-2f3d5c7e9b14")


def derived_id(*parts: str) -> str:
    """A stable id from `parts`: the same request always maps to the same id."""
    return str(uuid.uuid5(ID_NAMESPACE, "/".join(parts)))


@dataclass(frozen=True)
class Outcome:
    """What the ledger made of a command within the wait: done, rejected, or unknown yet."""

    done: bool
    rejection: str | None = None


async def send_and_wait(
    runtime: GatewayRuntime, command: Command, done: Callable[[], Awaitable[bool]]
) -> Outcome:
    """Append `command`, then wait up to SYNC_WAIT_MS for `done()` or a rejection."""
    await runtime.commands.send(command)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + runtime.settings.SYNC_WAIT_MS / 1000
    pause = 0.01
    while True:
        if await done():
            return Outcome(done=True)
        rejected = await rejection_of(runtime.database, command.meta.command_id)
        if rejected is not None:
            return Outcome(done=False, rejection=rejected)
        if loop.time() >= deadline:
            return Outcome(done=False)
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.1)


def conflict_if_rejected(outcome: Outcome) -> None:
    """Turn a ledger rejection into a 409 problem naming the ledger's reason."""
    if outcome.rejection is not None:
        raise ProblemError(409, "rejected_by_ledger", outcome.rejection)
