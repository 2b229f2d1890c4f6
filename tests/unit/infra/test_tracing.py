"""Where a consumed record's work joins its mission's trace (infra/tracing.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from opentelemetry import propagate, trace
from opentelemetry.context import Context

from infra import tracing
from infra.tracing import current_trace_id, event_context, mission_context, work_span

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = f"00-{TRACE}-b7ad6b7169203331-01"


def traceparent_of(context: Context) -> str | None:
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    return carrier.get("traceparent")


def span_context_of(context: object) -> trace.SpanContext:
    return trace.get_current_span(context).get_span_context()  # type: ignore[arg-type]


def test_an_event_carrying_a_traceparent_is_continued_under_that_span() -> None:
    context = event_context([("traceparent", PARENT.encode())], "f" * 32)
    assert traceparent_of(context) == PARENT


def test_an_event_without_one_stays_in_its_missions_trace() -> None:
    found = span_context_of(event_context([("trace_id", TRACE.encode())], TRACE))
    assert format(found.trace_id, "032x") == TRACE and found.is_remote


def test_a_mission_joins_under_its_last_event_when_the_projection_kept_it() -> None:
    assert traceparent_of(mission_context(TRACE, PARENT)) == PARENT
    kept_nothing = span_context_of(mission_context(TRACE, "garbage"))
    assert format(kept_nothing.trace_id, "032x") == TRACE


def test_a_trace_id_that_is_no_w3c_id_starts_nothing() -> None:
    assert not span_context_of(mission_context("not-a-trace", None)).is_valid


def test_work_runs_in_its_missions_trace_even_when_nothing_records(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tracing, "_recording", False)
    with work_span("react", mission_context(TRACE, None), {"velocity.mission_id": "m"}):
        inside = current_trace_id()
    assert inside == TRACE
    assert current_trace_id() != TRACE, "the mission's context is left when the work ends"


def test_the_decider_and_the_projector_start_without_the_http_frameworks() -> None:
    """Importing FastAPI and aiohttp was half of their start-up CPU (infra/http_tracing.py)."""
    probe = (
        "import sys, ledger.decider, projections.projector;"
        "print(sorted({'fastapi', 'aiohttp', 'httpx'} & set(sys.modules)))"
    )
    started = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert started.stdout.strip() == "[]"
