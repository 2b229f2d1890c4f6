"""Mission traces (issue 11): one mission is one OpenTelemetry trace across the root, the
decider, the colony and the projector — four processes — exported over OTLP/HTTP to a
collector on 127.0.0.1, with the trace id in every event and log line of the mission."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest

from tests.e2e.conftest import OPERATOR_KEY, RunningStack, until
from tests.e2e.test_colony import CRM, status_is
from tests.fake_services import ExportedSpan, FakeCollector

pytestmark = pytest.mark.e2e
SERVICES = {"velocity-root", "velocity-decider", "velocity-colony", "velocity-projector"}


def log_lines(stack: RunningStack, service: str) -> list[dict[str, Any]]:
    """The JSON log records of one of the stack's services."""
    text = (stack.log_dir / f"{service}.log").read_text()
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def orphans(spans: list[ExportedSpan]) -> list[str]:
    """Parent ids the trace does not hold."""
    ids = {span.span_id for span in spans}
    return [s.parent_span_id for s in spans if s.parent_span_id and s.parent_span_id not in ids]


def complete(spans: list[ExportedSpan], caller_span: str) -> bool:
    """The mission's trace holds its last spans and every parent but the caller's (exports
    arrive in batches, and a parent span ends, so is exported, after its children)."""
    names = {span.name for span in spans}
    done = "approval wait" in names and "decide CompleteMission" in names
    return done and orphans(spans) == [caller_span]


async def test_a_mission_is_one_trace_across_every_process(
    colony_stack: RunningStack, trace_collector: FakeCollector
) -> None:
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    traceparent = f"00-{trace_id}-{caller_span}-01"
    with colony_stack.client() as client, colony_stack.client(OPERATOR_KEY) as operator:
        created = client.post("/missions", json=CRM, headers={"traceparent": traceparent})
        mission_id = created.json()["mission_id"]
        waiting = await until(lambda: status_is(client, mission_id, "awaiting_approval", "failed"))
        assert waiting["status"] == "awaiting_approval", waiting
        approval = next(
            a for a in operator.get("/approvals").json()["pending"] if a["mission_id"] == mission_id
        )
        operator.post(f"/approvals/{approval['approval_id']}/approve", json={"reason": "checked"})
        done = await until(lambda: status_is(client, mission_id, "completed", "failed"))
        events = client.get(f"/missions/{mission_id}/events").json()["events"]
    assert done["status"] == "completed", done["failure_reason"]

    assert {event["trace_id"] for event in events} == {trace_id}, "every event in the trace"
    spans = await until(
        lambda: (
            trace_collector.trace(trace_id)
            if complete(trace_collector.trace(trace_id), caller_span)
            else None
        )
    )
    names = {span.name for span in spans}
    assert {span.service for span in spans} >= SERVICES, names
    assert orphans(spans) == [caller_span], "one tree under the caller's span"

    assert {"decide RequestMission", "decide ProposeWriteback", "decide ApproveWriteback"} <= names
    assert {"stage planning", "stage tasks", "stage review"} <= names, names
    provider_calls = [s for s in spans if " via " in s.name and s.service == "velocity-colony"]
    assert provider_calls, names
    (wait,) = [s for s in spans if s.name == "approval wait"]
    assert wait.end_ns > wait.start_ns

    approvals = [s for s in spans if s.name == "approved writeback"]
    assert [s.service for s in approvals] == ["velocity-root"], names
    (request_trace,) = approvals[0].links
    assert request_trace != trace_id, "the operator's own request is linked, not the parent"
    assert any(s.trace_id == request_trace for s in trace_collector.spans)

    about = [r for r in log_lines(colony_stack, "colony") if r.get("mission_id") == mission_id]
    assert [r["message"].split(" after ")[0] for r in about] == ["crm mission completed"]
    assert about[0]["trace_id"] == trace_id
    in_trace = [
        r["message"] for r in log_lines(colony_stack, "root") if r.get("trace_id") == trace_id
    ]
    assert any(m.startswith("POST /missions -> ") for m in in_trace), in_trace
    assert any(m.startswith("POST /internal/artifacts -> ") for m in in_trace), "colony → root"
