"""Unstorable text (NUL, lone surrogates) is refused wherever it hides in a command, also
when the decider's one-search check of a decoded record lets it skip the walk."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.commands import Command, CommandMeta, PlannedTask, RecordPlan
from ledger.text import first_unstorable, surely_storable
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


@given(documents)
def test_the_quick_check_never_passes_unstorable_text(document: Any) -> None:
    if surely_storable(document):
        assert first_unstorable(document) is None


def test_the_quick_check_passes_ordinary_text() -> None:
    assert surely_storable({"objective": "Résumé \\ 日本 \n\t", "tasks": [{"n": 1}], "b": b"1"})


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
