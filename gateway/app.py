"""The FastAPI root: the public authority over missions."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from loguru import logger
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.console.router import STATIC_DIR
from gateway.console.router import router as console_router
from gateway.guard import BodyLimits, RequestGuard
from gateway.mcp_server import build_mcp_server, mcp_route
from gateway.problems import install_openapi, install_problem_handlers
from gateway.routers import approvals, artifacts, health, identity, metrics, missions, releases
from gateway.runtime import GatewayRuntime
from gateway.settings import RootSettings
from infra.http_tracing import TELEMETRY, trace_app

DESCRIPTION = """
Mission intake, the audit trail and operator actions over the colony ledger.

Every write becomes a command on Kafka and is answered once the broker has it (202);
every read comes from PostgreSQL projections. Errors are RFC 9457 problem details.
Authenticate with `Authorization: Bearer <key>`; keys carry the role `service`
(mission intake), `colony` (the colony's artifact bridge), `operator` or `auditor`.
A request without a known key is refused before its body is read; bodies are limited
(413) while they stream.

The same operations are offered to agents as an MCP server (Streamable HTTP) at `/mcp`,
behind the same keys and roles; see docs/mcp.md. It speaks JSON-RPC, so it is not
described here.
"""


def create_app(settings: RootSettings) -> FastAPI:
    """The root application, its connections opened and closed with the app."""

    mcp = build_mcp_server()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.runtime = runtime = GatewayRuntime.build(settings)
        runtime.start()
        try:
            async with mcp.session_manager.run():
                yield
        finally:
            await runtime.close()

    app = FastAPI(
        title="Velocity colony root API",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        telemetry=TELEMETRY,
    )
    app.state.draining = False
    app.state.console_sessions = settings.console_sessions
    install_problem_handlers(app)
    app.add_middleware(Observed)
    limits = BodyLimits(
        default=settings.MAX_REQUEST_BYTES,
        by_prefix=(("/internal/artifacts", settings.MAX_ARTIFACT_BYTES * 2 + 4_096),),
    )
    app.add_middleware(RequestGuard, keys=settings.api_keys, limits=limits)
    # A request is matched against the routes in this order (FastAPI tries each router's
    # routes in turn, twice): the colony's artifact requests and mission intake, most of
    # the root's traffic, come first. No two routers' paths overlap, so order is free.
    for module in (artifacts, missions, approvals, releases, health, metrics, identity):
        app.include_router(module.router)
    app.include_router(console_router)
    app.router.routes.append(mcp_route(mcp))
    app.mount("/console/static", StaticFiles(directory=STATIC_DIR), name="console-static")
    install_openapi(app)
    trace_app(app)
    return app


class Observed:
    """Counts and times every request by route template and logs it without its headers.
    Plain ASGI: starlette's `BaseHTTPMiddleware` costs a task group per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        answer: dict[str, Any] = {"status": 500, "headers": []}

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer.update(status=message["status"], headers=message.get("headers", []))
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            observe(scope, answer["status"], dict(answer["headers"]), started)


SERVED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Methods counted by name; any other counts as `other`. The HTTP parser takes ~34 (all of
WebDAV's; any token at all with h11): as labels, anyone on the network, before any key is
checked, could add a series per method and route to every scrape of /metrics."""


def observe(scope: Scope, status: int, headers: dict[bytes, bytes], started: float) -> None:
    template = getattr(scope.get("route"), "path", "unmatched")
    method = scope["method"] if scope["method"] in SERVED_METHODS else "other"
    elapsed = time.perf_counter() - started
    metrics.HTTP_REQUESTS.labels(method, template, status).inc()
    metrics.HTTP_LATENCY.labels(method, template).observe(elapsed)
    if status == 503:
        dependency = headers.get(b"x-velocity-degraded", b"unknown").decode(errors="replace")
        metrics.DEGRADED.labels(dependency).inc()
    mission_id = scope.get("path_params", {}).get("mission_id")
    logger.bind(mission_id=mission_id).info(
        "{} {} -> {} in {:.1f} ms", method, template, status, elapsed * 1e3
    )
