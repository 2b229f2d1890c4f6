"""A mission's verified trail: every archived event with its link checked, the chain's
verdict, and the stages it went through. Pure over the archive's rows.

The links are checked by `ledger.audit.check_archived`, the code behind
`velocity ledger verify`, so the console and the CLI cannot disagree about a chain.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ledger.audit import ArchivedRow, BrokenLink, ChainVerifier, check_archived
from ledger.events import RecordedEvent
from ledger.state import MissionState
from ledger.timeline import StageSpan, fold_timeline
from ledger.wire import LedgerWire


@dataclass(frozen=True)
class TrailLink:
    """One archived event and whether it is a verified link of the chain."""

    sequence: int
    event: RecordedEvent | None
    problem: str | None

    @property
    def verified(self) -> bool:
        return self.problem is None

    @property
    def data_json(self) -> str:
        return json.dumps(self.event.body.data(), sort_keys=True, indent=1) if self.event else ""


@dataclass(frozen=True)
class Trail:
    mission_id: str
    links: list[TrailLink]
    spans: list[StageSpan]
    state: MissionState
    breaks: list[BrokenLink] = field(default_factory=list)

    @property
    def checked(self) -> int:
        return len(self.links)

    @property
    def intact(self) -> bool:
        return not self.breaks and bool(self.links)

    @property
    def verdict(self) -> str:
        if not self.links:
            return "no archived events yet"
        if self.intact:
            return f"verified: {self.checked} events, every link intact"
        return f"BROKEN at sequence {self.breaks[0].sequence}: {self.breaks[0].problem}"

    def export(self) -> dict[str, Any]:
        """The whole trail as one JSON document for an auditor's file."""
        return {
            "mission_id": self.mission_id,
            "chain": {"checked": self.checked, "intact": self.intact, "verdict": self.verdict},
            "events": [
                {
                    "verified": link.verified,
                    "problem": link.problem,
                    "meta": link.event.meta.model_dump(mode="json") if link.event else None,
                    "data": link.event.body.data() if link.event else None,
                }
                for link in self.links
            ],
            "stages": [
                {
                    "stage": span.stage,
                    "status": span.status,
                    "started_at": span.started_at.isoformat(),
                    "ended_at": span.ended_at.isoformat() if span.ended_at else None,
                }
                for span in self.spans
            ],
            "state": self.state.model_dump(mode="json"),
        }


def verified_trail(mission_id: str, rows: list[dict[str, Any]], wire: LedgerWire) -> Trail:
    """Check every archived row of one mission as `velocity ledger verify` does."""
    verifier = ChainVerifier("archive")
    links: list[TrailLink] = []
    breaks: list[BrokenLink] = []
    events: list[RecordedEvent] = []
    for row in rows:
        event, broken = check_archived(verifier, wire, ArchivedRow(**row))
        if broken is not None:
            breaks.append(broken)
        if event is not None:
            events.append(event)
        links.append(TrailLink(row["sequence"], event, broken.problem if broken else None))
    state, spans = fold_timeline(mission_id, events)
    return Trail(mission_id, links, spans, state, breaks)


def span_widths(spans: list[StageSpan], now: datetime) -> list[tuple[StageSpan, float, float]]:
    """Each span with its seconds and its share (percent) of the mission's time so far."""
    seconds = [span.seconds(now) for span in spans]
    total = sum(seconds) or 1.0
    return [(span, s, 100 * s / total) for span, s in zip(spans, seconds, strict=True)]
