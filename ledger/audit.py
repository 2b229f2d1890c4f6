"""Verifying mission chains: gap-free sequences and hashes that match their content.

Pure: feed each mission's events in order; the first bad link is reported with what is
wrong, which is what an auditor needs to start looking. A record that is not the next
link of its mission (ledger/history.py) is not history: in the log that is a finding (a
retried send, the orphan of a failed write, a forgery, which every reader ignores); in
the archive, which admits history only, it is a break.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.chain import link_hash
from ledger.events import GENESIS_HASH, RecordedEvent
from ledger.history import START, why_not_next
from ledger.wire import InvalidRecordError, LedgerWire


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
    """Checks chains event by event; remembers each mission's last accepted link.

    `strict` (the archive): a record that is not the next link is a break. Otherwise (the
    log) it is a finding, kept in `findings`, and the chain goes on from the first writer.
    """

    def __init__(self, source: str, strict: bool = True) -> None:
        self.source = source
        self.strict = strict
        self.heads: dict[str, tuple[int, str]] = {}
        self.findings: list[BrokenLink] = []
        self.checked = 0

    def check(self, event: RecordedEvent) -> BrokenLink | None:
        """The broken link at `event`, or None."""
        meta = event.meta
        head = self.heads.get(meta.mission_id, START)
        self.checked += 1
        why = why_not_next(head, event)
        if why is not None:
            outside = self._broken(event, f"not history ({why})")
            if self.strict:
                return outside
            self.findings.append(outside)
            return None
        self.heads[meta.mission_id] = (meta.sequence, meta.hash)
        if meta.hash != link_hash(head[1], meta, event.body):
            return self._broken(event, "hash does not match the event's content")
        return None

    def _broken(self, event: RecordedEvent, problem: str) -> BrokenLink:
        return BrokenLink(self.source, event.meta.mission_id, event.meta.sequence, problem)


@dataclass(frozen=True)
class ArchivedRow:
    """One archive row as verification needs it: its columns and its original bytes."""

    mission_id: str
    sequence: int
    hash: str
    record: bytes


def check_archived(
    verifier: ChainVerifier, wire: LedgerWire, row: ArchivedRow
) -> tuple[RecordedEvent | None, BrokenLink | None]:
    """Decode an archived record and check it as the next link of its chain.

    The one check behind `velocity ledger verify` and the console's trail: the record
    bytes must decode, the row's columns must be what the bytes say, and the event must be
    the next link with a hash matching its content."""
    try:
        event = wire.decode_event(row.record)
    except InvalidRecordError as error:
        return None, BrokenLink(verifier.source, row.mission_id, row.sequence, str(error))
    if (event.meta.sequence, event.meta.hash) != (row.sequence, row.hash):
        problem = "columns differ from the archived record bytes"
        return event, BrokenLink(verifier.source, row.mission_id, row.sequence, problem)
    return event, verifier.check(event)


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
