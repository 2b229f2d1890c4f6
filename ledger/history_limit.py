"""A mission's history is bounded, as Temporal bounds a workflow's. Pure.

Every event a mission holds is part of its state's cost: the state keeps the id of every
command it applied (for exactly-once), so folding one more event copies them all, and
the decider saves the whole state about once a second while the mission moves. Measured
with the pure step alone (one mission, one budget record a command): ~37 µs a command
early in a mission, ~105 µs at its 10,000th event, ~1 ms between 40,000 and 50,000 (the
state's JSON then 2 MB); the colony folds the same way. Nothing else bounded it: an
agent polling a mission over MCP appends an audit event a call (86,400 a day at one a
second), and anyone who can write the commands topic can append rejections forever.

So a mission still open when its events would reach `MISSION_MAX_EVENTS` is failed
instead (`history_limit`: the command that would have crossed it is answered by the
failure), and an ended one takes a tenth more (replays, audits of reads, rejections of
late commands) before commands about it are set aside as `history_full` dead letters,
listed and counted like any other. A replay starts a new mission with a history of its
own, so the work can go on.
"""

from __future__ import annotations

from ledger.events import EventBody, MissionFailed
from ledger.state import MissionState

DEFAULT_MAX_EVENTS = 10_000
"""`MISSION_MAX_EVENTS` unless set: an Oracle mission holds ~15 events, a CRM one ~25."""
HISTORY_LIMIT = "history_limit"
"""The start of the failure reason of a mission that reached its limit."""


def ended_cap(max_events: int) -> int:
    """The most events a mission holds once ended (or a release stream ever): a tenth
    more than an open mission may reach."""
    return max_events + max_events // 10


def within_history(
    state: MissionState, decision: list[EventBody], max_events: int
) -> list[EventBody]:
    """`decision` as the history may take it: an open mission whose events would reach
    `max_events` is failed instead."""
    if not decision or not state.exists or state.terminal:
        return decision
    if state.sequence + len(decision) < max_events:
        return decision
    reason = f"{HISTORY_LIMIT}: the mission reached {max_events} events (MISSION_MAX_EVENTS)"
    return [MissionFailed(reason=reason, stage=state.stage)]


def history_full(state: MissionState, command_id: str, max_events: int) -> str | None:
    """Why a command about this mission cannot be decided (a dead letter's detail), or
    None. A command already applied is not refused: its redelivery appends nothing. An
    open mission is never refused (`within_history` fails it), even one that grew past
    the cap before the limit existed."""
    if state.sequence < ended_cap(max_events) or command_id in state.applied_commands:
        return None
    if state.exists and not state.terminal:
        return None
    return (
        f"mission {state.mission_id} holds {state.sequence} events, the most an ended mission"
        f" keeps with MISSION_MAX_EVENTS {max_events}"
    )
