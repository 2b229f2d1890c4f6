"""Commands and events to and from Kafka records: Avro value, mission-id key, headers.

Headers (event_type, mission_id, trace_id) let tools route and trace without decoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from infra.topics import COMMANDS, partition_for
from ledger.codec import AvroCodec, UndecodableRecordError, UnknownSchemaError, schema_codec
from ledger.commands import COMMAND_TYPES, TEXT_CHECKED, Command, CommandMeta
from ledger.events import EVENT_TYPES, EventMeta, RecordedEvent
from ledger.text import surely_storable

DeadLetterReason = Literal[
    "undecodable",
    "unknown_schema",
    "wrong_topic",
    "wrong_partition",
    "unknown_command",
    "unknown_event",
    "invalid_command",
    "invalid_event",
    "invalid_metric",
    "invalid_dead_letter",
    "unstorable_text",
    "not_history",
    "refused",
    "history_full",
]
"""Why a record was set aside: a closed set, so the letters' counts by reason (on /metrics,
in /readyz) stay a few rows whoever writes the dead-letter topic."""
UNKNOWN_SCHEMA: DeadLetterReason = "unknown_schema"
"""The reason of a record whose writer schema this release does not know: readers hold
the partition there instead of setting the record aside (it decodes after an upgrade)."""
COMMAND_NAMESPACE = "velocity.commands"
EVENT_NAMESPACE = "velocity.events"
Headers = list[tuple[str, bytes]]


class InvalidRecordError(ValueError):
    """A record that decodes as Avro but is not a valid command or event.

    `reason` is the machine-readable dead-letter reason.
    """

    def __init__(self, reason: DeadLetterReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class KafkaRecord:
    """What goes to the producer: key, value, headers and the mission's partition."""

    key: bytes
    value: bytes
    headers: Headers
    partition: int
    """The partition the default (murmur2) partitioner gives the key, as `partition_for`
    caches it: passing it spares the producer hashing every record in pure Python."""


class LedgerWire:
    """Encodes and decodes the ledger's commands and events with one AvroCodec."""

    def __init__(self, codec: AvroCodec | None = None) -> None:
        self.codec = codec or schema_codec()

    def encode_command(self, command: Command) -> KafkaRecord:
        name = f"{COMMAND_NAMESPACE}.{command.command_type}"
        value = self.codec.encode(name, _flatten(command.meta.model_dump(), command.body))
        return _mission_record(
            command.meta.mission_id,
            value,
            record_headers(
                "command_type", command.command_type, command.meta.mission_id, command.meta.trace_id
            ),
        )

    def decode_command(self, data: bytes) -> Command:
        """A validated Command; raises InvalidRecordError with the dead-letter reason."""
        fields, type_name = self._decode(data, COMMAND_NAMESPACE)
        body_type = COMMAND_TYPES.get(type_name)
        if body_type is None:
            raise InvalidRecordError("unknown_command", f"no command type {type_name}")
        context = TEXT_CHECKED if surely_storable(fields) else None
        try:
            meta = CommandMeta.model_validate(fields.pop("meta"), context=context)
            body = body_type.model_validate(fields, context=context)
        except ValidationError as error:
            raise InvalidRecordError(
                _reason(error, "invalid_command"), _first_problem(error)
            ) from error
        return Command.model_construct(meta=meta, body=body)  # both parts validated: not again

    def encode_event(self, event: RecordedEvent) -> KafkaRecord:
        value = self.codec.encode(*self.event_fields(event))
        return _mission_record(
            event.meta.mission_id,
            value,
            record_headers(
                EVENT_TYPE_HEADER, event.event_type, event.meta.mission_id, event.meta.trace_id
            ),
        )

    def event_fields(self, event: RecordedEvent) -> tuple[str, dict[str, Any]]:
        """(schema name, Avro value) of `event`: what `encode_event` hands the codec (the
        bench times the codec alone on these)."""
        return f"{EVENT_NAMESPACE}.{event.event_type}", _flatten(
            event.meta.model_dump(), event.body
        )

    def decode_event(self, data: bytes) -> RecordedEvent:
        """A validated RecordedEvent; raises InvalidRecordError with the dead-letter reason."""
        fields, type_name = self._decode(data, EVENT_NAMESPACE)
        body_type = EVENT_TYPES.get(type_name)
        if body_type is None:
            raise InvalidRecordError("unknown_event", f"no event type {type_name}")
        try:
            meta = EventMeta.model_validate(fields.pop("meta"))
            body = body_type.model_validate(fields)
        except ValidationError as error:
            raise InvalidRecordError(
                _reason(error, "invalid_event"), _first_problem(error)
            ) from error
        return RecordedEvent(meta=meta, body=body)

    def event_position(self, data: bytes) -> tuple[str, str, int]:
        """(event type, mission id, sequence) of an event record, from its Avro alone: for a
        reader that skips most records and must not pay for validating them."""
        fields, type_name = self._decode(data, EVENT_NAMESPACE)
        meta = fields.get("meta")
        if not isinstance(meta, dict):
            raise InvalidRecordError("invalid_event", "meta: not a record")
        return type_name, str(meta.get("mission_id")), int(meta.get("sequence") or 0)

    def _decode(self, data: bytes, namespace: str) -> tuple[dict[str, Any], str]:
        try:
            name, fields = self.codec.decode(data)
        except UnknownSchemaError as error:
            raise InvalidRecordError(UNKNOWN_SCHEMA, str(error)) from error
        except UndecodableRecordError as error:
            raise InvalidRecordError("undecodable", str(error)) from error
        prefix, _, type_name = name.rpartition(".")
        if prefix != namespace:
            raise InvalidRecordError("wrong_topic", f"{name} is not in {namespace}")
        return fields, type_name


M = TypeVar("M", bound=BaseModel)


class ModelWire(Generic[M]):
    """One record type outside the ledger's commands and events (a metric, a dead letter):
    a pydantic model under one schema, to and from single-object Avro."""

    def __init__(
        self,
        schema: str,
        model: type[M],
        invalid_reason: DeadLetterReason,
        codec: AvroCodec | None = None,
    ) -> None:
        self.schema = schema
        self.model = model
        self.invalid_reason = invalid_reason
        self.codec = codec or schema_codec()

    def encode(self, value: M) -> bytes:
        return self.codec.encode(self.schema, value.model_dump())

    def decode(self, data: bytes) -> M:
        """A validated model; raises InvalidRecordError with the dead-letter reason."""
        try:
            name, fields = self.codec.decode(data)
        except UndecodableRecordError as error:
            raise InvalidRecordError("undecodable", str(error)) from error
        if name != self.schema:
            raise InvalidRecordError("wrong_topic", f"{name} is not a {self.schema}")
        try:
            return self.model.model_validate(fields)
        except ValidationError as error:
            raise InvalidRecordError(self.invalid_reason, _first_problem(error)) from error


def _mission_record(mission_id: str, value: bytes, headers: Headers) -> KafkaRecord:
    """A record keyed by its mission, bound for the mission's partition (commands and
    events have the same partition count: a mission's records share one number)."""
    key = mission_id.encode()
    return KafkaRecord(key, value, headers, partition_for(key, COMMANDS.partitions))


def _flatten(meta: dict[str, Any], body: Any) -> dict[str, Any]:
    return {"meta": meta, **body.model_dump()}


EVENT_TYPE_HEADER = "event_type"
"""The header naming an event record's type: readable without decoding the record."""


def record_headers(type_header: str, record_type: str, mission_id: str, trace_id: str) -> Headers:
    return [
        (type_header, record_type.encode()),
        ("mission_id", mission_id.encode()),
        ("trace_id", trace_id.encode()),
    ]


def misrouted(key: bytes | None, partition: int, mission_id: str, partitions: int) -> str | None:
    """Why a command record sits where its mission does not live, or None.

    A mission's commands and events share one partition, the one its id hashes to with
    the default partitioner; a record keyed otherwise, or put elsewhere (e.g. by a
    librdkafka client's CRC32 partitioner), would open a second history for the mission.
    """
    if key != mission_id.encode():
        shown = key.decode(errors="replace")[:80] if key is not None else "no key"
        return f"record key {shown!r} is not its mission id {mission_id!r}"
    home = partition_for(key, partitions)
    if home != partition:
        return (
            f"mission {mission_id} lives on partition {home}, the record arrived on {partition}"
            " (produce with the murmur2 partitioner, keyed by mission id)"
        )
    return None


def _reason(error: ValidationError, default: DeadLetterReason) -> DeadLetterReason:
    """`unstorable_text` when that is what failed, else `default`."""
    kinds = {item["type"] for item in error.errors(include_url=False)}
    return "unstorable_text" if "unstorable_text" in kinds else default


def _first_problem(error: ValidationError) -> str:
    first = error.errors(include_url=False)[0]
    field = ".".join(str(part) for part in first["loc"]) or "record"
    return f"{field}: {first['msg']}"
