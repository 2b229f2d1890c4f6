"""The hash chain's fast canonical JSON writes exactly the bytes of the definition.

An event hashed with other bytes than `json.dumps(sort_keys, compact, ensure_ascii=False)`
would fail every auditor's check (docs/ledger.md) and break the chain of every mission
recorded before the change.
"""

from __future__ import annotations

import typing
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from ledger.canonical_json import canonical_json, record_json
from ledger.commands import COMMAND_TYPES, CommandMeta
from ledger.events import EVENT_TYPES, EventMeta

# Every value a record's document can hold, and what orjson must hand back to json:
# lone surrogates, integers beyond 64 bits.
scalars = st.none() | st.booleans() | st.integers() | st.text()
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def outcome(write: typing.Callable[[object], bytes], document: object) -> bytes | str:
    """The bytes written, or the kind of error raised."""
    try:
        return write(document)
    except (TypeError, ValueError) as error:
        return type(error).__name__


@given(documents)
def test_record_json_writes_the_canonical_bytes_of_any_record_document(document: Any) -> None:
    assert outcome(record_json, document) == outcome(canonical_json, document)


def test_keys_are_sorted_by_code_point_and_nothing_is_ascii_escaped() -> None:
    document = {"é": "日本", "z": [1, None, True], "a": {"\n": '\x00\x1f"'}}
    expected = '{"a":{"\\n":"\\u0000\\u001f\\""},"z":[1,null,true],"é":"日本"}'.encode()
    assert record_json(document) == canonical_json(document) == expected
    # by code point, not by UTF-16 unit (which would put U+10000 before U+E000)
    astral = {"\U00010000": 1, "\ue000": 2, "\uffff": 3}
    assert record_json(astral) == canonical_json(astral)
    assert record_json(astral).decode().index("\ue000") < record_json(astral).decode().index(
        "\U00010000"
    )


def _annotations(model: type[BaseModel]) -> typing.Iterator[object]:
    """Every type named in `model`'s fields, nested models' fields included."""
    pending: list[object] = [field.annotation for field in model.model_fields.values()]
    while pending:
        annotation = pending.pop()
        yield annotation
        pending.extend(typing.get_args(annotation))
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            pending.extend(field.annotation for field in annotation.model_fields.values())


RECORD_MODELS = [CommandMeta, EventMeta, *COMMAND_TYPES.values(), *EVENT_TYPES.values()]


@pytest.mark.parametrize("model", RECORD_MODELS, ids=lambda model: model.__name__)
def test_no_record_holds_a_float(model: type[BaseModel]) -> None:
    """orjson and json write floats differently (1e16 against 1e+16): a float field would
    give events hashes no auditor can reproduce."""
    assert all(annotation is not float for annotation in _annotations(model))
