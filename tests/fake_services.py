"""Fakes of outside services that cannot exist here, as real HTTP servers on 127.0.0.1:
an OpenAI-compatible model endpoint whose outages, slow answers and hostile output
(`poison`: text such as NUL or a lone surrogate, sent as JSON escapes) tests control;
and an OpenTelemetry collector taking OTLP/HTTP (protobuf) trace exports."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.applications import Starlette

from infra.processes import free_port


class FakeServer:
    """An ASGI app (FastAPI, or the Starlette app of an MCP server) served by uvicorn on
    127.0.0.1 in the test's event loop; `app()` makes a new one at each start."""

    port: int
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    def app(self) -> Starlette:
        raise NotImplementedError

    async def start(self) -> None:
        config = uvicorn.Config(self.app(), host="127.0.0.1", port=self.port, log_config=None)
        self._server = uvicorn.Server(config)
        self._server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        """Take the endpoint down (connections refused from now on)."""
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
            self._server = None


@dataclass
class FakeModel(FakeServer):
    """POST /v1/chat/completions answering from the prompt's first source, citing [1];
    POST /v1/browse answering one page about the query (a browsing service)."""

    port: int = field(default_factory=free_port)
    delay_s: float = 0.0
    poison: str = ""
    calls: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def complete(request: Request) -> Response:
            self.calls += 1
            prompt = (await request.json())["messages"][-1]["content"]  # read, then think
            await asyncio.sleep(self.delay_s)
            first = prompt.split("[1]", 1)[-1].split("\n")[0].strip()
            answer = f"{first[:200]}{self.poison} [1]."
            return as_json({"choices": [{"message": {"role": "assistant", "content": answer}}]})

        @app.post("/v1/browse")
        async def browse(request: Request) -> Response:
            query = (await request.json())["query"]
            page = {
                "title": f"{query} newsroom{self.poison}",
                "source": f"https://example.test/{query.replace(' ', '-').lower()}/news",
                "text": f"{query} opened three new warehouses{self.poison} and is hiring.",
            }
            return as_json({"documents": [page]})

        return app


def as_json(document: Any) -> Response:
    """JSON with every non-ASCII character escaped, so even a lone surrogate is sent."""
    return Response(json.dumps(document), media_type="application/json")


@dataclass(frozen=True)
class ExportedSpan:
    """One span as a collector received it."""

    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    links: tuple[str, ...]
    """The trace ids of the spans this one links to."""
    start_ns: int
    end_ns: int
    error: bool


@dataclass
class FakeCollector(FakeServer):
    """POST /v1/traces: an OTLP/HTTP trace receiver keeping every span it is sent."""

    port: int = field(default_factory=free_port)
    spans: list[ExportedSpan] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/traces")
        async def export(request: Request) -> Response:
            message = ExportTraceServiceRequest()
            message.ParseFromString(await request.body())
            self.spans.extend(_spans(message))
            reply = ExportTraceServiceResponse().SerializeToString()
            return Response(reply, media_type="application/x-protobuf")

        return app

    def trace(self, trace_id: str) -> list[ExportedSpan]:
        return [span for span in self.spans if span.trace_id == trace_id]


def _spans(message: ExportTraceServiceRequest) -> list[ExportedSpan]:
    found = []
    for resource in message.resource_spans:
        service = next(
            (a.value.string_value for a in resource.resource.attributes if a.key == "service.name"),
            "",
        )
        for scope in resource.scope_spans:
            for span in scope.spans:
                found.append(
                    ExportedSpan(
                        service=service,
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        links=tuple(link.trace_id.hex() for link in span.links),
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        error=span.status.code == 2,
                    )
                )
    return found
