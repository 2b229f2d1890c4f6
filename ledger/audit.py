"""Verifying mission chains: gap-free sequences and hashes that match their content.

Pure: feed each mission's events in sequence order; the first bad link is reported
with what is wrong, which is what an auditor needs to start looking.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.chain import link_hash
from ledger.events import GENESIS_HASH, RecordedEvent


@dataclass(frozen=True)
class BrokenLink:
    """Where a chain breaks and how."""

    source: str
    mission_id: str
    sequence: int
    problem: str

    def __str__(self) -> str:
        return f"{self.source}: mission {self.mission_id} sequence {self.sequence}: {self.problem}"


class ChainVerifier:
    """Checks chains event by event; remembers each mission's last sequence and hash."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.heads: dict[str, tuple[int, str]] = {}
        self.checked = 0

    def check(self, event: RecordedEvent) -> BrokenLink | None:
        """The broken link at `event`, or None; the chain continues from `event` either way."""
        meta = event.meta
        sequence, prev_hash = self.heads.get(meta.mission_id, (0, GENESIS_HASH))
        self.heads[meta.mission_id] = (meta.sequence, meta.hash)
        self.checked += 1
        if meta.sequence != sequence + 1:
            return self._broken(event, f"expected sequence {sequence + 1} (gap or duplicate)")
        if meta.prev_hash != prev_hash:
            return self._broken(event, f"prev_hash {meta.prev_hash[:12]}… != {prev_hash[:12]}…")
        if meta.hash != link_hash(prev_hash, meta, event.body):
            return self._broken(event, "hash does not match the event's content")
        return None

    def _broken(self, event: RecordedEvent, problem: str) -> BrokenLink:
        return BrokenLink(self.source, event.meta.mission_id, event.meta.sequence, problem)


def compare_heads(archive: ChainVerifier, log: ChainVerifier) -> list[BrokenLink]:
    """Missions whose archive and log chains end at different places."""
    problems = []
    for mission_id in sorted(set(archive.heads) | set(log.heads)):
        in_archive = archive.heads.get(mission_id, (0, GENESIS_HASH))
        in_log = log.heads.get(mission_id, (0, GENESIS_HASH))
        if in_archive != in_log:
            problems.append(
                BrokenLink(
                    "archive vs log",
                    mission_id,
                    min(in_archive[0], in_log[0]) + 1,
                    f"archive ends at {in_archive[0]}, log at {in_log[0]}"
                    + ("" if in_archive[0] != in_log[0] else " with different hashes"),
                )
            )
    return problems
