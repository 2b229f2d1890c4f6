"""Unstorable text (NUL, lone surrogates) is refused wherever it hides in a command, also
when the decider's one-search check of a decoded record lets it skip the walk."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from ledger.commands import Command, CommandMeta, PlannedTask, RecordPlan
from ledger.text import first_unstorable, surely_storable, unstorable
from ledger.wire import InvalidRecordError, LedgerWire

# What a decoder hands back: text (NUL, surrogates, backslashes likely), bytes, numbers,
# datetimes, in lists and mappings.
text = st.text(alphabet=st.sampled_from(["a", "é", "\\", "x", "0", "\x00", "\ud800", "\udfff"]))
leaves = text | st.binary(max_size=4) | st.integers() | st.none() | st.datetimes()
documents = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=12,
)


def every_string(value: Any) -> list[str]:
    """The strings of `value`, keys and models' fields included: the reference the quick
    check is held to, walked the plain way."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, BaseModel):
        return every_string(value.__dict__)
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in every_string(k) + every_string(v)]
    if isinstance(value, list | tuple | set | frozenset):
        return [s for item in value for s in every_string(item)]
    return []


def holds_unstorable(value: Any) -> bool:
    return any(unstorable(s) for s in every_string(value))


@given(documents)
def test_the_quick_check_never_passes_unstorable_text(document: Any) -> None:
    if surely_storable(document):
        assert not holds_unstorable(document)
    assert (first_unstorable(document) is None) == (not holds_unstorable(document))


@given(st.lists(text, max_size=3), text, st.sets(text, max_size=3))
def test_models_tuples_and_sets_are_looked_into(texts: list[str], one: str, many: set[str]) -> None:
    """What the colony and the root check: models holding models, as their fields."""
    task = PlannedTask.model_construct(task_id=one, kind="k", description="d", depends_on=texts)
    document = {"plan": RecordPlan.model_construct(tasks=[task], rationale=one), "tags": (one,)}
    if surely_storable(document):
        assert not holds_unstorable(document)
    if surely_storable({"labels": frozenset(many)}):
        assert not holds_unstorable(many)


def test_keys_that_are_not_text_and_unknown_types_are_walked_not_passed() -> None:
    """orjson cannot write them: the quick check says maybe, the walk decides."""
    assert not surely_storable({1: "fine"})
    assert first_unstorable({1: "fine"}) is None
    assert first_unstorable({1: {"deep": ["ok", "bad\x00"]}}) == (
        "1.deep.1",
        "contains a NUL character (U+0000) at position 3",
    )
    assert not surely_storable({"when": object()})
    assert first_unstorable({"plan": [{"why": "\ud800"}]}) == (
        "plan.0.why",
        "contains a lone surrogate (U+D800) at position 0",
    )


def test_the_quick_check_passes_ordinary_text() -> None:
    assert surely_storable({"objective": "Résumé \\ 日本 \n\t", "tasks": [{"n": 1}], "b": b"1"})
    assert surely_storable({"at": datetime.now(UTC), "n": 2**40, "x": 1.5, "none": None})


def test_a_decoded_command_with_nul_deep_inside_is_refused_naming_the_field() -> None:
    """(A lone surrogate cannot reach a record at all: Avro writes UTF-8.)"""
    wire = LedgerWire()
    task = PlannedTask.model_construct(
        task_id="t1", kind="research", description="look\x00here", depends_on=[]
    )
    meta = CommandMeta(
        command_id="c1",
        mission_id="m1",
        issued_at=datetime.now(UTC),
        correlation_id="m1",
        trace_id="0" * 32,
        actor="planner",
    )
    body = RecordPlan.model_construct(tasks=[task], rationale="why")
    record = wire.encode_command(Command.model_construct(meta=meta, body=body))
    with pytest.raises(InvalidRecordError) as refused:
        wire.decode_command(record.value)
    assert refused.value.reason == "unstorable_text"
    assert "tasks.0.description" in refused.value.detail
