"""`python -m gateway`: serve the root API on ROOT_HOST:ROOT_PORT.

On SIGTERM or SIGINT the root first drains: intake answers 503 `shutting_down` (with
Retry-After) and /readyz fails, so clients and load balancers move on, while requests in
flight finish; DRAIN_S later the server stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

import uvicorn
from fastapi import FastAPI
from loguru import logger

from gateway.app import create_app
from gateway.settings import RootSettings
from infra.config import load_settings
from infra.http_tracing import trace_http_clients
from infra.service_runtime import run_loop
from infra.structured_logs import configure_logging
from infra.tracing import configure_tracing

DRAIN_S = 1.0


async def serve(app: FastAPI, settings: RootSettings) -> None:
    config = uvicorn.Config(
        app,
        host=settings.ROOT_HOST,
        port=settings.ROOT_PORT,
        http="httptools",
        log_config=None,
        access_log=False,
    )
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    loop = asyncio.get_running_loop()

    def drain() -> None:
        if app.state.draining:
            server.should_exit = True  # a second signal: stop now
            return
        logger.info("root draining: intake refused, stopping in {:.0f}s", DRAIN_S)
        app.state.draining = True
        loop.call_later(DRAIN_S, setattr, server, "should_exit", True)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, drain)
    await server.serve()


def main() -> None:
    settings = load_settings(RootSettings)
    configure_logging(settings, "root")
    trace_http_clients(configure_tracing(settings, "root"))
    settings.require_infrastructure()
    app = create_app(settings)
    run_loop(serve(app, settings))  # with httptools, uvicorn's fast HTTP parser


if __name__ == "__main__":
    main()
