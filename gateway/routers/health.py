"""Liveness and readiness of the root."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from gateway.runtime import GatewayRuntime
from infra.heartbeat import check_partitions_owned
from infra.kafka import probe_broker
from infra.readiness import Check, run_checks
from infra.topics import EVENTS
from projections.migrate import pending_migrations

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive (it answers); says nothing about dependencies."""
    return {"status": "alive"}


@router.get("/readyz", responses={503: {"description": "A named check fails"}})
async def readyz(request: Request) -> JSONResponse:
    """Broker, database, migrations, decider, projector and (if enabled) colony are healthy."""
    runtime: GatewayRuntime = request.app.state.runtime
    ready, body = await run_checks(readiness_checks(runtime))
    return JSONResponse(body, status_code=200 if ready else 503)


def readiness_checks(runtime: GatewayRuntime) -> dict[str, Check]:
    """The root's checks by name."""

    async def database() -> None:
        pool = await runtime.database.pool()
        await pool.fetchval("SELECT 1")

    async def migrations() -> None:
        pool = await runtime.database.pool()
        async with pool.acquire() as connection:
            pending = await pending_migrations(connection)
        if pending:
            raise RuntimeError(f"not at head; pending: {', '.join(pending)}")

    def heartbeat(service: str) -> Check:
        async def check() -> None:
            pool = await runtime.database.pool()
            await check_partitions_owned(pool, service, EVENTS.partitions)

        return check

    async def colony() -> None:
        response = await runtime.colony.get("/healthz")
        if response.status_code != 200:
            raise RuntimeError(f"colony /healthz answered {response.status_code}")

    checks: dict[str, Check] = {
        "broker": lambda: probe_broker(runtime.commands.options),
        "database": database,
        "migrations": migrations,
        "decider": heartbeat("decider"),
        "projector": heartbeat("projector"),
    }
    if runtime.settings.COLONY_ENABLED:
        checks["colony"] = colony
    return checks
