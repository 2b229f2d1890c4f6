"""Sending a command and waiting, briefly, for what the ledger made of it.

The root answers from projections. After the broker acknowledged a command, the request
waits (gateway/outcomes.py) until the archive holds an event the command caused (the
projector writes views and archive in one transaction, so the views show it too) or a
CommandRejected (a 409 for the client), or SYNC_WAIT_MS passes (202: accepted, look
again at the link).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from gateway.outcomes import Outcome
from gateway.problems import ProblemError
from gateway.runtime import GatewayRuntime
from ledger.commands import Command
from ledger.name_ids import name_id

ID_NAMESPACE = uuid.UUID("0b7c2f8e-51a4-4d8e-9a61-2f3d5c7e9b14")


def derived_id(*parts: str) -> str:
    """A stable id from `parts`: the same request always maps to the same id."""
    return name_id(ID_NAMESPACE, "/".join(parts))


async def send_and_wait(
    runtime: GatewayRuntime,
    command: Command,
    done: Callable[[], Awaitable[bool]],
    *,
    applied_is_done: bool = False,
) -> Outcome:
    """Append `command`, then wait up to SYNC_WAIT_MS for its outcome; `done()` says
    whether the views show what was asked (a command applied may not have done it), asked
    only when that is not known: with `applied_is_done`, an applied command did it (a new
    mission's request: its row is written in the transaction that archives its event)."""
    await runtime.commands.send(command)
    wait_s = runtime.settings.SYNC_WAIT_MS / 1000
    outcome = await runtime.outcomes.wait(command.meta.command_id, wait_s)
    if outcome is not None and (outcome.rejection is not None or applied_is_done):
        return outcome
    return Outcome(done=await done())


def conflict_if_rejected(outcome: Outcome) -> None:
    """Turn a ledger rejection into a 409 problem naming the ledger's reason."""
    if outcome.rejection is not None:
        raise ProblemError(409, "rejected_by_ledger", outcome.rejection)
