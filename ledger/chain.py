"""Turning decided event bodies into recorded events: sequence, ids and the hash chain.

hash = sha256(prev_hash + canonical bytes), where the canonical bytes are the UTF-8
JSON of {"data", "meta" without "hash", "type"} with sorted keys and no whitespace.
JSON rather than Avro bytes so an auditor can recompute a hash in any language from
the archive's columns alone (docs/ledger.md shows how).
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Any

from ledger.canonical_json import record_json
from ledger.commands import Command
from ledger.events import EventBody, EventMeta, RecordedEvent
from ledger.name_ids import name_id
from ledger.state import MissionState

EVENT_ID_NAMESPACE = uuid.UUID("6f1d9c3e-8a57-4c1b-9e0a-3d5b7f2c4a10")


def event_id_for(mission_id: str, sequence: int, command_id: str) -> str:
    """Deterministic event id: a command re-decided in the same state yields the same ids,
    and no two events of the ledger share one (the position is part of it, so a command id
    refused once as unproven and later applied for real gets new ids)."""
    return name_id(EVENT_ID_NAMESPACE, f"{mission_id}/{sequence}/{command_id}")


def canonical_bytes(meta: EventMeta, body: EventBody) -> bytes:
    """The bytes the hash covers: everything about the event except its own hash."""
    return _canonical(meta.model_dump(mode="json", exclude={"hash"}), body)


def _canonical(meta_json: dict[str, object], body: EventBody) -> bytes:
    document = {
        "data": body.data(),
        "meta": meta_json,
        "type": meta_json["event_type"],
    }
    return record_json(document)


def link_hash(prev_hash: str, meta: EventMeta, body: EventBody) -> str:
    """sha256 over the previous hash and this event's canonical bytes, hex."""
    return hashlib.sha256(prev_hash.encode() + canonical_bytes(meta, body)).hexdigest()


def record(
    state: MissionState, command: Command, bodies: list[EventBody], now: datetime
) -> list[RecordedEvent]:
    """Stamp `bodies` as the next events of the mission `state` describes."""
    recorded = []
    prev_hash = state.last_hash
    occurred_at = now.isoformat().replace("+00:00", "Z")
    for index, body in enumerate(bodies):
        sequence = state.sequence + 1 + index
        fields: dict[str, Any] = {
            "event_id": event_id_for(state.mission_id, sequence, command.meta.command_id),
            "mission_id": state.mission_id,
            "sequence": sequence,
            "event_type": type(body).__name__,
            "occurred_at": occurred_at,
            "causation_id": command.meta.command_id,
            "correlation_id": command.meta.correlation_id,
            "trace_id": command.meta.trace_id,
            "actor": command.meta.actor,
            "prev_hash": prev_hash,
        }
        digest = hashlib.sha256(prev_hash.encode() + _canonical(fields, body)).hexdigest()
        meta = EventMeta.model_validate(fields | {"occurred_at": now, "hash": digest})
        recorded.append(RecordedEvent(meta=meta, body=body))
        prev_hash = digest
    return recorded


def verify_link(prev_hash: str, event: RecordedEvent) -> bool:
    """Whether `event` follows `prev_hash` and its own hash is what its content gives."""
    return event.meta.prev_hash == prev_hash and event.meta.hash == link_hash(
        prev_hash, event.meta, event.body
    )
