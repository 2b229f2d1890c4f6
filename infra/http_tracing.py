"""Tracing at the HTTP edges: the FastAPI servers (root, colony) and their aiohttp and
httpx clients (infra/tracing.py says how a mission's trace travels).

Apart from infra/tracing.py so that the decider and the projector, which serve and call
no HTTP, do not import FastAPI, aiohttp and their instrumentations at every start: that
was 0.7 s of the 1.6 s of CPU that importing both took, on cores a restarting stack
shares.
"""

from __future__ import annotations

import aiohttp
from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from opentelemetry import propagate
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.sdk.trace import TracerProvider

from infra.tracing import install, recording

UNTRACED_ROUTES = "healthz,readyz,metrics,console/static"
"""Probes and scrapes: a span per poll would bury the missions' traces."""


def trace_http_clients(provider: TracerProvider) -> None:
    """Client spans for httpx (the colony's providers, the root's colony checks) always,
    as they cost little; for aiohttp (colony → root) only when spans are recorded (else
    `http_trace_configs` carries the context alone). After `configure_tracing`."""
    instrumentors: list[BaseInstrumentor] = [HTTPXClientInstrumentor()]
    if recording():
        instrumentors.append(AioHttpClientInstrumentor())
    install(instrumentors, provider)


def http_trace_configs() -> list[aiohttp.TraceConfig]:
    """An aiohttp session's trace configs: none when spans are recorded (the aiohttp
    instrumentation makes the client spans), else one that only puts the active trace
    context into each request's headers: the instrumentation cost the colony ~5 % of its
    CPU for client spans nobody recorded."""
    if recording():
        return []

    async def carry(
        session: aiohttp.ClientSession, context: object, params: aiohttp.TraceRequestStartParams
    ) -> None:
        propagate.inject(params.headers)

    config = aiohttp.TraceConfig()
    config.on_request_start.append(carry)
    return [config]


TELEMETRY: TelemetryConfig = {"operation_spans": False, "metrics": False, "logs": False}
"""FastAPI's own telemetry (given to every app): the request's server span only.
Operation spans (dependencies, endpoint, serialization) would cost every request a few
more spans, recorded or not."""


def trace_app(app: FastAPI) -> None:
    """Server spans for every request but the probes; a caller's traceparent continued.

    When nothing records, FastAPI's own telemetry (which stands aside for this
    instrumentation when it is installed) is enough: it runs each request in the trace
    its `traceparent` names, else in a new one. The instrumentation matched every request
    against the routes a second time to name a span nobody would see: ~4 % of the root's
    CPU under load."""
    if recording():
        FastAPIInstrumentor.instrument_app(
            app, excluded_urls=UNTRACED_ROUTES, exclude_spans=["receive", "send"]
        )
