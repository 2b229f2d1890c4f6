"""MissionState and `evolve`: the fold of a mission's events into what is true now.

`evolve` is pure and total: every recorded event moves the stream position and hash
forward, whatever its type, so replaying any prefix of a stream gives the state the
decider had at that point.
"""

from __future__ import annotations

from functools import singledispatch
from typing import Literal

from pydantic import BaseModel, ConfigDict

from ledger.events import GENESIS_HASH, CommandRejected, EventBody, MissionRequested, RecordedEvent

MissionStatus = Literal[
    "new",
    "requested",
    "planning",
    "running",
    "in_review",
    "awaiting_approval",
    "completed",
    "failed",
    "cancelled",
    "timed_out",
]
TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled", "timed_out"})


class MissionState(BaseModel):
    """Everything the decider needs to judge the next command of one mission."""

    model_config = ConfigDict(frozen=True)

    mission_id: str
    status: MissionStatus = "new"
    stage: str = "none"
    sequence: int = 0
    last_hash: str = GENESIS_HASH
    mission_type: str | None = None
    mode: str | None = None
    applied_commands: frozenset[str] = frozenset()

    @property
    def exists(self) -> bool:
        return self.status != "new"

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


def evolve(state: MissionState, event: RecordedEvent) -> MissionState:
    """The state after `event`: position, hash and applied command ids, then the body."""
    moved = state.model_copy(
        update={
            "sequence": event.meta.sequence,
            "last_hash": event.meta.hash,
            "applied_commands": state.applied_commands | {event.meta.causation_id},
        }
    )
    return apply(event.body, moved)


@singledispatch
def apply(body: EventBody, state: MissionState) -> MissionState:
    """Event-type specific part of `evolve`; unknown types change nothing else."""
    return state


@apply.register
def _requested(body: MissionRequested, state: MissionState) -> MissionState:
    return state.model_copy(
        update={
            "status": "requested",
            "stage": "intake",
            "mission_type": body.mission_type,
            "mode": body.mode,
        }
    )


@apply.register
def _rejected(body: CommandRejected, state: MissionState) -> MissionState:
    return state


def fold(mission_id: str, events: list[RecordedEvent]) -> MissionState:
    """The state after all of `events`, starting from a new mission."""
    state = MissionState(mission_id=mission_id)
    for event in events:
        state = evolve(state, event)
    return state
