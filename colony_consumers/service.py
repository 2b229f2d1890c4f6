"""The colony service process: the reactors, the sweeper, and /healthz, /readyz, /metrics
on PORT, all in one asyncio process (run more copies to share the partitions)."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import aiohttp
import asyncpg
import httpx
import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from colony_consumers.colony import Colony
from colony_consumers.mcp_research import McpResearch, announce_tools, require_tool
from colony_consumers.metric_emitter import MetricEmitter
from colony_consumers.providers import Guarded, choose_browser, choose_model, choose_research
from colony_consumers.root_client import RootClient, check_root_key, wait_for_root_key
from colony_consumers.settings import ColonySettings
from colony_consumers.sweeper import sweep_forever
from colony_consumers.task_runner import TaskRunner
from colony_consumers.worker import Worker
from infra.config import load_settings
from infra.database import service_pool
from infra.group_takeover import remove_dead_predecessors
from infra.heartbeat import beat_forever
from infra.http_tracing import TELEMETRY, http_trace_configs, trace_app, trace_http_clients
from infra.kafka import client_options, probe_broker
from infra.readiness import Check, ReadinessReport, http_status, run_checks
from infra.service_runtime import run_service
from infra.structured_logs import configure_logging
from infra.topics import TopicNames
from infra.tracing import configure_tracing
from ledger.metrics import MetricWire

SWEEP_EVERY_S = 2.0


class AdmissionLevels(Collector):
    """Gauges of this colony process, read from its status at scrape time."""

    def __init__(self, status: Callable[[], dict[str, Any]]) -> None:
        self.status = status

    def collect(self) -> list[Metric]:
        now = self.status()
        admission = now.get("admission", {})
        levels = [
            ("velocity_colony_missions_running", "Missions holding an admission slot", "running"),
            ("velocity_colony_missions_queued", "Missions waiting for a slot", "queued"),
            ("velocity_colony_mission_slots", "MAX_CONCURRENT_MISSIONS", "max"),
        ]
        families: list[Metric] = [
            GaugeMetricFamily(name, help_text, value=float(admission.get(key, 0)))
            for name, help_text, key in levels
        ]
        breakers = GaugeMetricFamily(
            "velocity_provider_breaker_open",
            "1 while a provider's circuit breaker is open in this colony process",
            labels=["provider"],
        )
        for provider, breaker in now.get("breakers", {}).items():
            breakers.add_metric([provider], 1.0 if breaker["state"] == "open" else 0.0)
        families.append(breakers)
        return families


def create_app(
    settings: ColonySettings, checks: dict[str, Check], status: Callable[[], dict[str, Any]]
) -> FastAPI:
    """The colony's HTTP face: /healthz, /readyz, /metrics, and /status for the root."""
    app = FastAPI(title="Velocity colony service", version="0.1.0", telemetry=TELEMETRY)
    trace_app(app)
    expected = f"Bearer {settings.COLONY_SERVICE_API_KEY.get_secret_value()}".encode()

    @app.get("/status")
    async def colony_status(request: Request) -> JSONResponse:
        """What the colony is doing; only for the root (COLONY_SERVICE_API_KEY)."""
        presented = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(expected, presented):
            problem = {
                "type": "urn:velocity:problem:unauthenticated",
                "title": "Unauthorized",
                "status": 401,
                "detail": "send Authorization: Bearer <COLONY_SERVICE_API_KEY>",
            }
            return JSONResponse(problem, status_code=401, media_type="application/problem+json")
        return JSONResponse(status())

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Alive."""
        return {"status": "alive"}

    @app.get("/readyz", response_model=ReadinessReport)
    async def readyz() -> JSONResponse:
        """Broker and database reachable; the root accepts ROOT_API_KEY as a colony key;
        an MCP research server offers MCP_RESEARCH_TOOL (`research_tools`)."""
        report = await run_checks(checks)
        return JSONResponse(report.model_dump(exclude_none=True), status_code=http_status(report))

    registry = CollectorRegistry()
    for collector in (ProcessCollector, PlatformCollector, GCCollector):
        collector(registry=registry)
    registry.register(AdmissionLevels(status))

    @app.get("/metrics")
    async def metrics() -> Response:
        """Process metrics and this process's admission and breakers (the colony's
        measurements of missions go to colony.metrics, which the root exposes)."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


ROOT_CONNECTIONS = 16
"""Enough for one root process: a connection per mission in flight only costs sockets."""


@asynccontextmanager
async def clients(
    settings: ColonySettings,
) -> AsyncIterator[tuple[asyncpg.Pool, RootClient, httpx.AsyncClient]]:
    _, database_url = settings.require_infrastructure()
    pool = await service_pool(database_url, max_size=8)
    session = aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {settings.ROOT_API_KEY.get_secret_value()}"},
        timeout=aiohttp.ClientTimeout(total=10),
        connector=aiohttp.TCPConnector(limit=ROOT_CONNECTIONS),
        trace_configs=http_trace_configs(),
    )
    providers = httpx.AsyncClient(timeout=settings.TASK_TIMEOUT_MS / 1000)
    try:
        yield pool, RootClient(session, str(settings.ROOT_API_BASE_URL)), providers
    finally:
        await providers.aclose()
        await session.close()
        await pool.close()


async def serve(settings: ColonySettings, stop: asyncio.Event) -> None:
    bootstrap, _ = settings.require_infrastructure()
    options = client_options(settings, bootstrap)
    async with clients(settings) as (pool, root, provider_http):
        producer = AIOKafkaProducer(acks="all", linger_ms=2, **options)
        topics = TopicNames(settings.KAFKA_TOPIC_PREFIX)
        metrics = MetricEmitter(producer, topics.metrics, MetricWire())
        guarded = Guarded(
            settings.TASK_TIMEOUT_MS / 1000 / 3,
            report=metrics.provider_call,
            retries=settings.PROVIDER_RETRIES,
        )
        research = choose_research(
            settings.RESEARCH_PROVIDER, settings.MCP_RESEARCH_TOOL, pool, provider_http
        )
        runner = TaskRunner(
            research,
            choose_model(settings.DEFAULT_MODEL_ROUTE, provider_http),
            root,
            guarded,
            choose_browser(settings.BROWSER_PROVIDER, provider_http),
        )
        worker = Worker(pool, root, runner, producer, topics, settings.TASK_TIMEOUT_MS)
        colony = Colony(settings, options, pool, worker, producer, metrics)
        await remove_dead_predecessors(pool, "colony", options)

        def status() -> dict[str, Any]:
            return {
                "reactors": settings.COLONY_REACTORS,
                "partitions": sorted(colony.partitions),
                "missions_known": len(colony.files),
                "missions_open": sum(1 for f in colony.files.values() if not f.state.terminal),
                "admission": colony.admission(),
                "breakers": guarded.breaker_states(),
            }

        checks: dict[str, Check] = {
            "broker": lambda: probe_broker(options),
            "database": lambda: pool.fetchval("SELECT 1"),
            "root_auth": lambda: check_root_key(root),
        }
        if isinstance(research, McpResearch):
            checks["research_tools"] = partial(require_tool, research)
        app = create_app(settings, checks, status)
        server = uvicorn.Server(
            uvicorn.Config(app, host=settings.HOST, port=settings.PORT, log_config=None)
        )
        background = [
            asyncio.create_task(server.serve()),
            asyncio.create_task(beat_forever(pool, "colony", colony.heartbeat)),
            asyncio.create_task(colony.watch_rollout(SWEEP_EVERY_S)),
        ]
        if isinstance(research, McpResearch):
            background.append(asyncio.create_task(announce_tools(research)))
        if settings.COLONY_REACTORS and await wait_for_root_key(root, stop):
            background.append(
                asyncio.create_task(
                    sweep_forever(
                        pool,
                        worker.sweep_send,
                        colony.execute_stalled,
                        settings.MISSION_TIMEOUT_MS,
                        settings.TASK_TIMEOUT_MS,
                        SWEEP_EVERY_S,
                    )
                )
            )
            await colony.run(stop)
        else:
            await stop.wait()
        server.should_exit = True
        for task in background[1:]:
            task.cancel()
        await background[0]


def main() -> None:
    settings = load_settings(ColonySettings)
    configure_logging(settings, "colony")
    trace_http_clients(configure_tracing(settings, "colony"))
    run_service("colony", lambda stop: serve(settings, stop), release_memory=True)


if __name__ == "__main__":
    main()
