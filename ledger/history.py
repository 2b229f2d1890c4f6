"""What a mission's history is: one rule for every reader of `mission.events`. Pure.

An event is part of its mission's history only if it is the next link: its sequence is
one past the last accepted event's and its `prev_hash` is that event's hash (the first
event: sequence 1 after the genesis hash). Anything else is a record the history does not
contain: a second record at a taken position (a retried send, a stalled writer's fork, a
forgery: the first writer wins), or a record after a gap (the orphan of a failed write).
Such records are reported, never folded. The decider's rebuild, the colony, the archive
(and the views, which follow the archive) and `velocity ledger verify` all apply this rule.
"""

from __future__ import annotations

from ledger.events import GENESIS_HASH, RecordedEvent

Head = tuple[int, str]
"""The last accepted link of a mission: (sequence, hash)."""
START: Head = (0, GENESIS_HASH)


def why_not_next(head: Head, event: RecordedEvent) -> str | None:
    """None when `event` is the next link after `head`; else why it is not history."""
    sequence, last_hash = head
    if event.meta.sequence <= sequence:
        return f"position_taken: sequence {event.meta.sequence} already holds an event"
    if event.meta.sequence != sequence + 1:
        return f"gap: sequence {event.meta.sequence} follows {sequence}"
    if event.meta.prev_hash != last_hash:
        return f"unlinked: prev_hash {event.meta.prev_hash[:12]}… is not {last_hash[:12]}…"
    return None


class History:
    """The accepted heads of the missions a reader has seen from the start of a partition."""

    def __init__(self) -> None:
        self.heads: dict[str, Head] = {}

    def admit(self, event: RecordedEvent) -> str | None:
        """Accept `event` as its mission's next link (None), or say why it is not one."""
        mission_id = event.meta.mission_id
        why = why_not_next(self.heads.get(mission_id, START), event)
        if why is None:
            self.heads[mission_id] = (event.meta.sequence, event.meta.hash)
        return why
