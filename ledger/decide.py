"""`decide`: the mission state machine's judgement of one command. Pure, never raises.

Returns the event bodies that follow from the command: [] for a command already
applied (idempotency), a CommandRejected with a machine-readable reason for an
illegal one. Nothing is ever silently dropped.
"""

from __future__ import annotations

from functools import singledispatch

from ledger.commands import Command, CommandBody, RequestMission
from ledger.events import CommandRejected, EventBody, MissionRequested
from ledger.state import MissionState


def decide(state: MissionState, command: Command) -> list[EventBody]:
    """The events `command` produces against `state`."""
    if command.meta.command_id in state.applied_commands:
        return []
    if state.terminal:
        return [reject(command, "mission_terminal", f"mission is {state.status}")]
    return handle(command.body, state, command)


def reject(command: Command, reason: str, detail: str) -> CommandRejected:
    """A rejection of `command` for `reason`, recorded in the mission's ledger."""
    return CommandRejected(
        command_id=command.meta.command_id,
        command_type=command.command_type,
        reason=reason,
        detail=detail,
    )


@singledispatch
def handle(body: CommandBody, state: MissionState, command: Command) -> list[EventBody]:
    """Command-type specific part of `decide`."""
    return [reject(command, "unknown_command", f"no handler for {type(body).__name__}")]


@handle.register
def _request(body: RequestMission, state: MissionState, command: Command) -> list[EventBody]:
    if state.exists:
        return [reject(command, "mission_exists", "the mission was already requested")]
    return [MissionRequested(**body.model_dump())]
