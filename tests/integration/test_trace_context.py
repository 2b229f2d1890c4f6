"""The colony's requests to the root carry the mission's trace context (infra/tracing.py),
over a real aiohttp session to an HTTP server on 127.0.0.1 that records what it got."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from infra import tracing
from infra.http_tracing import http_trace_configs
from infra.tracing import mission_context, work_span

pytestmark = pytest.mark.integration
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


async def test_a_request_made_during_a_missions_work_carries_its_trace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With nothing recording (no aiohttp instrumentation, no spans): the context alone."""
    monkeypatch.setattr(tracing, "_recording", False)
    seen: list[str | None] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(request.headers.get("traceparent"))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession(trace_configs=http_trace_configs()) as session:
            with work_span("react", mission_context(TRACE, None)):
                async with session.get(f"http://127.0.0.1:{port}/") as response:
                    assert response.status == 200
            async with session.get(f"http://127.0.0.1:{port}/") as response:
                assert response.status == 200
    finally:
        await runner.cleanup()
    assert seen[0] is not None and seen[0].split("-")[1] == TRACE
    assert seen[1] is None or seen[1].split("-")[1] != TRACE, "outside the work, not its trace"
