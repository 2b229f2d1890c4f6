"""Mission traces with the SDK's in-memory exporter (issue 11): the root, decider and
projector in this process over the real broker and PostgreSQL, their spans recorded
in memory. tests/e2e/test_traces.py follows a whole mission across the four processes."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import asyncpg
import httpx
import pytest
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from infra.config import CommonSettings
from infra.http_tracing import trace_http_clients
from infra.tracing import configure_tracing
from tests.conftest import Isolated
from tests.integration.conftest import eventually, ledger_services, prepared, root_api

pytestmark = pytest.mark.integration
MISSION = {"type": "oracle", "mode": "assisted", "objective": "risk?", "project_id": "atlas"}
OPERATOR_AUTH = {"Authorization": "Bearer local-operator-key"}


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    """This process traced into memory for the module; instrumentations removed after."""
    memory = InMemorySpanExporter()
    provider = configure_tracing(CommonSettings(), "tests", SimpleSpanProcessor(memory))
    trace_http_clients(provider)
    try:
        yield memory
    finally:
        for instrumentor in (
            AIOKafkaInstrumentor(),
            HTTPXClientInstrumentor(),
            AioHttpClientInstrumentor(),
        ):
            instrumentor.uninstrument()
        AsyncPGInstrumentor().uninstrument()  # type: ignore[no-untyped-call]
        provider.shutdown()


def in_trace(exporter: InMemorySpanExporter, trace_id: str) -> list[ReadableSpan]:
    return [
        span
        for span in exporter.get_finished_spans()
        if format(span.context.trace_id, "032x") == trace_id
    ]


def hex_span(span_id: int) -> str:
    return format(span_id, "016x")


async def test_a_request_the_decider_and_the_projector_share_the_callers_trace(
    isolated: Isolated, exporter: InMemorySpanExporter
) -> None:
    await prepared(isolated)
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    headers = {"traceparent": f"00-{trace_id}-{caller_span}-01"}
    async with ledger_services(isolated), root_api(isolated, SYNC_WAIT_MS=3_000) as client:
        created = await client.post("/missions", json=MISSION, headers=headers)
        mission_id = created.json()["mission_id"]
        await eventually(lambda: recorded(exporter, trace_id, "decide RequestMission"))
        await eventually(lambda: readable(client, mission_id))
        mission = (await client.get(f"/missions/{mission_id}/events")).json()["events"]
        stored = await eventually(lambda: traceparent_of(isolated, mission_id))
        failed = await client.post(
            f"/missions/{mission_id}/fail", json={"reason": "operator stop"}, headers=OPERATOR_AUTH
        )
        await eventually(lambda: recorded(exporter, trace_id, "decide FailMission"))
    assert created.status_code in (201, 202) and failed.status_code in (200, 202)
    assert {event["trace_id"] for event in mission} == {trace_id}

    recorded_spans = in_trace(exporter, trace_id)
    spans = {span.name: span for span in recorded_spans}
    server = spans["POST /missions"]
    assert server.parent is not None
    assert hex_span(server.parent.span_id) == caller_span, "the caller's trace continued"
    decided = spans["decide RequestMission"]
    sends = {s.context.span_id for s in recorded_spans if s.name.endswith("commands send")}
    assert decided.parent is not None and decided.parent.span_id in sends, "via Kafka headers"
    received = [s for s in recorded_spans if s.name.endswith("mission.events receive")]
    assert any(s.parent and s.parent.span_id == decided.context.span_id for s in received)
    assert stored.split("-")[2] == hex_span(decided.context.span_id), "projection keeps it"

    fail = spans["fail mission"]
    assert fail.parent is not None and fail.parent.span_id == decided.context.span_id
    (link,) = fail.links
    assert format(link.context.trace_id, "032x") != trace_id, "linked to the operator's request"


async def readable(client: httpx.AsyncClient, mission_id: str) -> bool:
    return (await client.get(f"/missions/{mission_id}")).status_code == 200


async def recorded(exporter: InMemorySpanExporter, trace_id: str, name: str) -> bool:
    return any(span.name == name for span in in_trace(exporter, trace_id))


async def traceparent_of(slice_: Isolated, mission_id: str) -> str | None:
    connection = await asyncpg.connect(slice_.database_url)
    try:
        value: str | None = await connection.fetchval(
            "SELECT traceparent FROM missions WHERE mission_id = $1", mission_id
        )
        return value
    finally:
        await connection.close()
