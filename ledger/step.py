"""One command through the pure core: decide, stamp into the chain, evolve.

The decider process does exactly this for every command, and tests and the property
checks do it without a broker, so both exercise the same code.
"""

from __future__ import annotations

from datetime import datetime

from ledger.authority import OperatorAuthority
from ledger.chain import record
from ledger.commands import Command
from ledger.decide import decide
from ledger.events import RecordedEvent
from ledger.history_limit import DEFAULT_MAX_EVENTS, within_history
from ledger.state import MissionState, evolve


def step(
    state: MissionState,
    command: Command,
    now: datetime,
    authority: OperatorAuthority,
    max_events: int = DEFAULT_MAX_EVENTS,
) -> tuple[MissionState, list[RecordedEvent]]:
    """The mission state after `command`, and the recorded events it appended; a mission
    whose history would reach `max_events` is failed instead (ledger/history_limit.py)."""
    decision = within_history(state, decide(state, command, authority), max_events)
    events = record(state, command, decision, now)
    for event in events:
        state = evolve(state, event)
    return state, events
