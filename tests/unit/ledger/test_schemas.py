"""The wire format: schemas_avro/ is the truth, old records keep decoding, and any Avro
library can read a record with nothing but the .avsc files."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import types
import typing
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastavro import schemaless_reader, schemaless_writer
from fastavro.schema import load_schema, parse_schema

from ledger.chain import verify_link
from ledger.codec import (
    HEADER_SIZE,
    AvroCodec,
    UndecodableRecordError,
    history_text,
    schema_fingerprint,
)
from ledger.commands import COMMAND_TYPES, CompleteTask, PlannedTask, StartTask, StoredArtifact
from ledger.events import EVENT_TYPES
from ledger.wire import LedgerWire
from schemas_avro import SCHEMA_DIR
from tests.factories import AUTHORITY
from tests.unit.ledger.scenario import Mission

GOLDEN = Path(__file__).parents[2] / "golden"
NESTED: dict[Any, str] = {
    PlannedTask: "velocity.PlannedTask",
    StoredArtifact: "velocity.StoredArtifact",
}
"""Records that appear inside commands and events, by the named type their schema uses."""
ALL_TYPES = {f"velocity.commands.{n}": m for n, m in COMMAND_TYPES.items()} | {
    f"velocity.events.{n}": m for n, m in EVENT_TYPES.items()
}


def as_json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda d: d.isoformat()))


@pytest.mark.parametrize("name", sorted(ALL_TYPES))
def test_every_record_type_has_a_golden_record(name: str) -> None:
    assert (GOLDEN / f"{name}.avro").exists(), f"add a golden record for {name}"


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.avro")), ids=lambda p: p.stem)
def test_golden_records_still_decode_to_the_same_values(path: Path) -> None:
    name, value = AvroCodec().decode(path.read_bytes())
    assert name == path.stem
    assert as_json(value) == json.loads(path.with_suffix(".json").read_text())


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.avro")), ids=lambda p: p.stem)
def test_golden_records_still_validate_as_domain_objects(path: Path) -> None:
    wire = LedgerWire()
    if ".commands." in path.stem:
        assert wire.decode_command(path.read_bytes()).command_type == path.stem.rsplit(".", 1)[1]
    else:
        assert wire.decode_event(path.read_bytes()).event_type == path.stem.rsplit(".", 1)[1]


def expected_avro_type(annotation: Any) -> Any:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return ["null", expected_avro_type(next(a for a in args if a is not type(None)))]
    if origin is typing.Literal or annotation is str:
        return "string"
    if origin is list:
        item = NESTED.get(args[0]) or expected_avro_type(args[0])
        return {"type": "array", "items": item}
    if origin is dict:
        return {"type": "map", "values": expected_avro_type(args[1])}
    if annotation is datetime:
        return {"type": "long", "logicalType": "timestamp-micros"}
    return {int: "long", bool: "boolean"}[annotation]


@pytest.mark.parametrize("name", sorted(ALL_TYPES))
def test_models_and_schemas_agree_field_by_field(name: str) -> None:
    declared = json.loads((SCHEMA_DIR / f"{name}.avsc").read_text())
    meta = "velocity.CommandMeta" if ".commands." in name else "velocity.EventMeta"
    assert declared["fields"][0] == {"name": "meta", "type": meta}
    fields = {f["name"]: f["type"] for f in declared["fields"][1:]}
    model_fields = ALL_TYPES[name].model_fields
    assert list(fields) == list(model_fields)
    for field, info in model_fields.items():
        assert fields[field] == expected_avro_type(info.annotation), field


@pytest.mark.parametrize("model", list(NESTED), ids=lambda m: m.__name__)
def test_nested_records_and_their_schemas_agree_field_by_field(model: Any) -> None:
    declared = json.loads((SCHEMA_DIR / f"{NESTED[model]}.avsc").read_text())
    fields = {f["name"]: f["type"] for f in declared["fields"]}
    assert list(fields) == list(model.model_fields)
    for field, info in model.model_fields.items():
        assert fields[field] == expected_avro_type(info.annotation), field


def test_any_avro_library_decodes_a_record_with_only_the_avsc_files() -> None:
    data = (GOLDEN / "velocity.events.WritebackApproved.avro").read_bytes()
    schema = load_schema(str(SCHEMA_DIR / "velocity.events.WritebackApproved.avsc"))
    assert data[:2] == b"\xc3\x01"
    assert data[2:HEADER_SIZE] == schema_fingerprint(schema)
    value = schemaless_reader(io.BytesIO(data[HEADER_SIZE:]), schema, None)
    assert isinstance(value, dict)
    assert value["decided_by"] == "decided_by-value"


@pytest.mark.parametrize(
    "data",
    [b"", b"{}", b"\xc3\x01" + b"\x00" * 8 + b"x", b"\xc3\x01" + b"\x01" * 8],
    ids=["empty", "json", "unknown-fingerprint", "unknown-fingerprint-no-body"],
)
def test_garbage_is_undecodable_with_a_reason(data: bytes) -> None:
    with pytest.raises(UndecodableRecordError):
        AvroCodec().decode(data)


def test_a_truncated_body_is_undecodable() -> None:
    data = (GOLDEN / "velocity.events.MissionRequested.avro").read_bytes()
    with pytest.raises(UndecodableRecordError, match="does not decode"):
        AvroCodec().decode(data[:-20])


def evolved_schemas(tmp_path: Path, new_field: dict[str, Any]) -> Path:
    """A copy of schemas_avro/ where MissionRequested gained `new_field`, its old
    version kept in history/ as docs/ledger.md prescribes."""
    copy = tmp_path / "schemas"
    shutil.copytree(SCHEMA_DIR, copy)
    name = "velocity.events.MissionRequested"
    (copy / "history" / f"{name}.v1.avsc").write_text(history_text(copy / f"{name}.avsc"))
    declared = json.loads((copy / f"{name}.avsc").read_text())
    declared["fields"].append(new_field)
    (copy / f"{name}.avsc").write_text(json.dumps(declared))
    return copy


def test_adding_a_field_with_a_default_keeps_old_records_decoding(tmp_path: Path) -> None:
    schemas = evolved_schemas(tmp_path, {"name": "priority", "type": "string", "default": "p2"})
    data = (GOLDEN / "velocity.events.MissionRequested.avro").read_bytes()
    name, value = AvroCodec(schemas).decode(data)
    assert name == "velocity.events.MissionRequested"
    assert value["priority"] == "p2"
    assert value["objective"] == "objective-value"
    assert isinstance(value["meta"]["occurred_at"], datetime)


def test_a_signed_command_round_trips_and_still_verifies() -> None:
    data = (GOLDEN / "signed" / "velocity.commands.ApproveWriteback.avro").read_bytes()
    signed = LedgerWire().decode_command(data)
    assert signed.meta.proof is not None and signed.meta.proof.key_id == "local"
    assert AUTHORITY.refusal(signed) is None
    assert LedgerWire().encode_command(signed).value == data


def test_adding_a_field_without_a_default_breaks_old_records(tmp_path: Path) -> None:
    schemas = evolved_schemas(tmp_path, {"name": "priority", "type": "string"})
    data = (GOLDEN / "velocity.events.MissionRequested.avro").read_bytes()
    with pytest.raises(UndecodableRecordError):
        AvroCodec(schemas).decode(data)


def test_an_event_recorded_before_a_field_was_added_still_verifies() -> None:
    mission = Mission().running()
    mission.do(StartTask(task_id="t0", worker="w"))
    mission.do(CompleteTask(task_id="t0", summary="found", tokens_used=1, duration_ms=2))
    event, previous = mission.log[-1], mission.log[-2]
    old_fields = event.body.model_dump(mode="json", exclude={"notes"})
    meta = event.meta.model_dump(mode="json", exclude={"hash"})
    as_old_code_hashed_it = json.dumps(  # the recipe of docs/ledger.md, before `notes` existed
        {"data": old_fields, "meta": meta, "type": "TaskSucceeded"},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    old_hash = hashlib.sha256((previous.meta.hash + as_old_code_hashed_it).encode()).hexdigest()
    writer = parse_schema(
        json.loads((SCHEMA_DIR / "history" / "velocity.events.TaskSucceeded.v1.avsc").read_text())
    )
    body = io.BytesIO()
    old_meta = event.meta.model_dump() | {"hash": old_hash}
    schemaless_writer(body, writer, {"meta": old_meta, **event.body.model_dump(exclude={"notes"})})
    old_record = b"\xc3\x01" + schema_fingerprint(writer) + body.getvalue()
    decoded = LedgerWire().decode_event(old_record)
    assert decoded.body.notes == []  # type: ignore[attr-defined]
    assert verify_link(previous.meta.hash, decoded)
    noted = decoded.model_copy(update={"body": decoded.body.model_copy(update={"notes": ["x"]})})
    assert not verify_link(previous.meta.hash, noted), "notes, once present, are hashed"
