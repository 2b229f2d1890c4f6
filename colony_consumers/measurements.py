"""What the colony measures about each event it sees: stage latency, mission outcomes and
durations, policy decisions and approval waits (the spec's metrics). Pure: the colony
emits them; the projector counts them into Prometheus families."""

from __future__ import annotations

from datetime import datetime

from colony_consumers.mission_file import MissionFile
from ledger.events import RecordedEvent
from ledger.metrics import MetricName
from ledger.state import TERMINAL_STATUSES, status_change

Measurement = tuple[MetricName, float, dict[str, str]]


def measurements(
    file: MissionFile, event: RecordedEvent, since: datetime | None, stage: str
) -> list[Measurement]:
    """The measurements `event` gives, `since`/`stage` being where the mission was before."""
    meta, body = event.meta, event.body
    labels: dict[str, str] = {
        "mission_type": file.request.mission_type if file.request else "unknown"
    }
    found: list[Measurement] = []
    moved = status_change(body)
    if moved is not None and since is not None:
        spent = (meta.occurred_at - since).total_seconds() * 1000
        found.append(("stage_latency", spent, labels | {"stage": stage}))
        if moved[0] in TERMINAL_STATUSES:
            found.append(("mission_outcome", 1.0, labels | {"outcome": moved[0]}))
            if file.requested_at is not None:
                took = (meta.occurred_at - file.requested_at).total_seconds() * 1000
                found.append(("mission_duration", took, labels | {"outcome": moved[0]}))
    if event.event_type in ("ToolRequestAllowed", "ToolRequestDenied"):
        decision = "allowed" if event.event_type == "ToolRequestAllowed" else "denied"
        rule = str(getattr(body, "rule_id", ""))
        found.append(("policy_decision", 1.0, labels | {"decision": decision, "rule_id": rule}))
    writeback_id = str(getattr(body, "writeback_id", ""))
    if (
        event.event_type in ("WritebackApproved", "WritebackRejected")
        and writeback_id in file.asked_at
    ):
        wait = (meta.occurred_at - file.asked_at[writeback_id]).total_seconds() * 1000
        found.append(("approval_wait", wait, labels))
    return found
