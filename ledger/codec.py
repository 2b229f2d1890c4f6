"""Avro encoding of every record on the ledger's topics, with fastavro.

fastavro (maintained, compiled) replaces the deprecated avro-python3. Records use
Avro single-object encoding: 0xC3 0x01, the 8-byte little-endian CRC-64-AVRO
fingerprint of the writer schema's canonical form, then the binary body. Any Avro
library holding schemas_avro/ can therefore decode any record on its own.

Schema evolution: before changing a schema, its previous version is kept, self-contained
(`history_text`), in schemas_avro/history/ (docs/ledger.md shows the one-liner). Old
records are then read with their writer schema and resolved to the current one, the
Avro way; a change the current schema cannot resolve fails the golden-record test.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from fastavro import schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, load_schema, parse_schema, to_parsing_canonical_form

from schemas_avro import SCHEMA_DIR

MAGIC = b"\xc3\x01"
HEADER_SIZE = len(MAGIC) + 8


def schema_fingerprint(schema: Any) -> bytes:
    """CRC-64-AVRO of the canonical form; fastavro's hex is already little-endian order."""
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))


def history_text(path: Path) -> str:
    """The schema at `path` as it goes into schemas_avro/history/: named types inlined,
    docs dropped, logical types kept (its fingerprint is still that of its canonical form,
    but reading old records with it still yields datetimes)."""

    def without_docs(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: without_docs(v) for k, v in node.items() if k != "doc"}
        if isinstance(node, list):
            return [without_docs(v) for v in node]
        return node

    schema = load_schema(str(path), _write_hint=False)
    return json.dumps(without_docs(schema), separators=(",", ":")) + "\n"


class UndecodableRecordError(ValueError):
    """Bytes that are not a record of any known schema; the message says why."""


class UnknownSchemaError(UndecodableRecordError):
    """An Avro record whose writer schema this code does not know (yet): written by a newer
    release during a rolling deploy, it decodes once this reader is upgraded."""


class AvroCodec:
    """Encodes and decodes records by full schema name (e.g. velocity.events.MissionRequested)."""

    def __init__(self, directory: Path = SCHEMA_DIR) -> None:
        self._schemas: dict[str, Any] = {}
        self._headers: dict[str, bytes] = {}
        self._writers: dict[bytes, tuple[str, Any]] = {}
        for path in sorted(directory.glob("*.avsc")):
            self._register_current(path)
        for path in sorted((directory / "history").glob("*.avsc")):
            self._register_historical(path)

    def _register_current(self, path: Path) -> None:
        """Load one .avsc (references resolve to sibling files named by full name)."""
        declared = json.loads(path.read_text())
        name = f"{declared['namespace']}.{declared['name']}"
        schema = load_schema(str(path))
        print_ = schema_fingerprint(schema)
        self._schemas[name] = schema
        self._headers[name] = MAGIC + print_
        self._writers[print_] = (name, None)

    def _register_historical(self, path: Path) -> None:
        """A previous, self-contained version: used only to read what it once wrote."""
        schema: Any = parse_schema(json.loads(path.read_text()))
        self._writers.setdefault(schema_fingerprint(schema), (str(schema["name"]), schema))

    @property
    def names(self) -> Iterable[str]:
        return self._schemas.keys()

    def encode(self, name: str, value: dict[str, Any]) -> bytes:
        """Single-object encoding of `value` under schema `name`."""
        buffer = io.BytesIO()
        buffer.write(self._headers[name])
        schemaless_writer(buffer, self._schemas[name], value)
        return buffer.getvalue()

    def decode(self, data: bytes) -> tuple[str, dict[str, Any]]:
        """(full schema name, value) of a single-object encoded record."""
        if len(data) < HEADER_SIZE or data[:2] != MAGIC:
            raise UndecodableRecordError("not Avro single-object encoding (bad magic bytes)")
        known = self._writers.get(bytes(data[2:HEADER_SIZE]))
        if known is None:
            raise UnknownSchemaError(f"unknown writer schema, fingerprint {data[2:10].hex()}")
        name, old_writer = known
        if name not in self._schemas:
            raise UndecodableRecordError(f"{name}: record type no longer exists")
        reader = self._schemas[name]
        try:
            if old_writer is None:
                value = schemaless_reader(io.BytesIO(data[HEADER_SIZE:]), reader, None)
            else:
                value = schemaless_reader(io.BytesIO(data[HEADER_SIZE:]), old_writer, reader)
        except Exception as error:  # fastavro raises several types for truncated bodies
            raise UndecodableRecordError(f"{name}: body does not decode: {error}") from error
        if not isinstance(value, dict):
            raise UndecodableRecordError(f"{name}: body is not a record")
        return name, value


@cache
def schema_codec(directory: Path = SCHEMA_DIR) -> AvroCodec:
    """The codec of `directory`'s schemas, loaded once a process (it is read-only once
    built). Loading and fingerprinting every schema takes ~0.3 s of CPU, and each service
    built five or six codecs: ~1.5 s of every start, on two cores shared by the stack."""
    return AvroCodec(directory)
