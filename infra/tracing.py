"""Mission traces with OpenTelemetry: one mission, one trace, across every process.

A trace starts at the root's request (the FastAPI instrumentation; a caller's
`traceparent` is continued). The W3C trace context then travels in Kafka record headers:
the aiokafka instrumentation injects it on every `send` and gives each consumed record a
receive span; the decider, whose record batches bypass `send`, injects the context of the
command each event was decided from; the decider and the colony parent their own spans
(decide, react, stage, provider call, approval wait) on the context a record carries.
aiohttp (colony → root), httpx (providers) and asyncpg calls get their spans from their
instrumentations. Commands about an existing mission — an operator's approval hours
later — continue the mission's trace from its last event, linked to the request that
sent them, so a mission's spans all share its trace id, which its events and log lines
carry too.

Spans are recorded and exported (OTLP over HTTP) only when OTEL_EXPORTER_OTLP_ENDPOINT
is set. Otherwise nothing is recorded and the per-record work is skipped where it would
cost throughput (Kafka, asyncpg and aiohttp are not instrumented, the decider and the
colony open no spans, HTTP servers leave it to FastAPI's own telemetry): the trace id
still flows — in each command's and event's `trace_id`, and through HTTP from the colony
to the root (infra/http_tracing.py) — so events and log lines carry the mission's trace id
either way.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, MutableSequence
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, TraceIdRatioBased
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, TraceFlags

from infra.config import CommonSettings

Headers = MutableSequence[tuple[str, bytes]]
TRACE_ID = re.compile(r"^[0-9a-f]{32}$")

tracer = trace.get_tracer("velocity")
_recording = False


class _HeaderGetter(Getter[Headers]):
    def get(self, carrier: Headers, key: str) -> list[str] | None:
        found = [value.decode(errors="replace") for name, value in carrier if name == key]
        return found[:1] or None

    def keys(self, carrier: Headers) -> list[str]:
        return [name for name, _ in carrier]


class _HeaderSetter(Setter[Headers]):
    def set(self, carrier: Headers, key: str, value: str) -> None:
        carrier[:] = [(name, raw) for name, raw in carrier if name != key]
        carrier.append((key, value.encode()))


HEADER_GETTER = _HeaderGetter()
HEADER_SETTER = _HeaderSetter()


def configure_tracing(
    settings: CommonSettings, service: str, processor: SpanProcessor | None = None
) -> TracerProvider:
    """Install the process's tracer provider and the Kafka and asyncpg instrumentations,
    once at start (the HTTP services add theirs: infra/http_tracing.py). `processor`
    (tests: an in-memory exporter) records spans as an endpoint would."""
    endpoint = settings.OTEL_EXPORTER_OTLP_ENDPOINT
    recording = endpoint is not None or processor is not None
    sampler = ParentBased(TraceIdRatioBased(settings.OTEL_TRACES_SAMPLER_ARG))
    provider = TracerProvider(
        resource=Resource.create({"service.name": f"velocity-{service}"}),
        sampler=sampler if recording else ALWAYS_OFF,
    )
    if endpoint is not None:
        exporter = OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces")
        provider.add_span_processor(BatchSpanProcessor(exporter))
    if processor is not None:
        provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    global _recording
    _recording = recording
    if recording:
        asyncpg_instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
        install([AIOKafkaInstrumentor(), asyncpg_instrumentor], provider)
    return provider


def recording() -> bool:
    """Whether spans are recorded in this process (configure_tracing decided)."""
    return _recording


def install(instrumentors: list[BaseInstrumentor], provider: TracerProvider) -> None:
    """Install each instrumentation not installed yet."""
    for instrumentor in instrumentors:
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=provider)


@contextmanager
def work_span(
    name: str, context: Context | None = None, attributes: dict[str, str] | None = None
) -> Iterator[Span]:
    """A span of work under `context` (else the active one); when nothing records, no span
    is made but the work still runs in `context`, so its requests carry the trace id."""
    if _recording:
        with tracer.start_as_current_span(name, context=context, attributes=attributes) as span:
            yield span
        return
    if context is None:
        yield trace.get_current_span()
        return
    token = otel_context.attach(context)
    try:
        yield trace.get_current_span(context)
    finally:
        otel_context.detach(token)


@contextmanager
def consumer_span(name: str, headers: Headers | None) -> Iterator[Span]:
    """The span of handling a consumed record, under the context the record carries; when
    nothing records, none is made and the record's headers are not even read."""
    with work_span(name, record_context(headers) if _recording else None) as span:
        yield span


def current_trace_id() -> str | None:
    """The active span's trace id as 32 hex digits, or None outside any trace."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def record_context(headers: Headers | None) -> Context:
    """The trace context a Kafka record carries (empty when it carries none: a process
    that records nothing sends none, and then there is nothing to parse)."""
    if not headers or all(name != "traceparent" for name, _ in headers):
        return Context()
    return propagate.extract(list(headers), getter=HEADER_GETTER)


def event_context(headers: Headers | None, trace_id: str) -> Context:
    """The trace context an event record carries; else (a process that records nothing
    sent it, or it was restored) its mission's trace, known by the event's trace id."""
    carried = record_context(headers)
    if carried and trace.get_current_span(carried).get_span_context().is_valid:
        return carried
    return mission_context(trace_id, None)


def carry_context(headers: Headers) -> None:
    """Put the active trace context into `headers` (replacing any already there), when
    this process records spans."""
    if _recording:
        propagate.inject(headers, setter=HEADER_SETTER)


def parse_traceparent(traceparent: str | None) -> Context | None:
    """The context a stored W3C traceparent names, or None when there is none."""
    if not traceparent:
        return None
    extracted = propagate.extract({"traceparent": traceparent})
    valid = trace.get_current_span(extracted).get_span_context().is_valid
    return extracted if valid else None


def mission_context(trace_id: str, traceparent: str | None) -> Context:
    """Where a command about an existing mission joins the mission's trace: under its last
    event (`traceparent`, as the projection keeps it), else under its trace id alone."""
    stored = parse_traceparent(traceparent)
    if stored is not None:
        return stored
    return _trace_context(trace_id)


@lru_cache(maxsize=4_096)
def _trace_context(trace_id: str) -> Context:
    """The context of a trace known by its id alone. Cached: the colony asks it for every
    event it folds, a mission's events all of one trace (contexts are immutable)."""
    if not TRACE_ID.match(trace_id):
        return Context()
    remote = SpanContext(
        trace_id=int(trace_id, 16),
        span_id=int(trace_id[:16], 16) or 1,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(NonRecordingSpan(remote))


@contextmanager
def mission_span(name: str, mission: tuple[str, str | None] | None) -> Iterator[Span]:
    """The span a command about an existing mission is sent in: a child of the active span
    when that is already the mission's trace (the colony's requests); else under the
    mission's last event (`mission` is its trace id and traceparent), linked to the active
    span — the operator's request that asked for it."""
    here = trace.get_current_span().get_span_context()
    parent: Context | None = None
    if mission is not None and (not here.is_valid or format(here.trace_id, "032x") != mission[0]):
        parent = mission_context(*mission)
    links = [Link(here)] if parent is not None and here.is_valid else []
    with tracer.start_as_current_span(name, context=parent, links=links) as span:
        yield span


def record_interval(
    name: str, parent: Context, started: datetime, ended: datetime, **attributes: str
) -> None:
    """A span for a wait that is known only once it is over (a stage, an approval), when
    spans are recorded."""
    if not _recording:
        return
    span = tracer.start_span(name, context=parent, start_time=_ns(started), attributes=attributes)
    span.end(end_time=_ns(ended))


def _ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1e9)
