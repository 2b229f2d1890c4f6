"""The colony service process: health and readiness on PORT (reactors join in later work)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from colony_consumers.settings import ColonySettings
from infra.config import load_settings
from infra.kafka import client_options, probe_broker
from infra.readiness import run_checks
from infra.structured_logs import configure_logging


def create_app(settings: ColonySettings) -> FastAPI:
    """The colony's HTTP face: /healthz, /readyz."""
    bootstrap, database_url = settings.require_infrastructure()
    options = client_options(settings, bootstrap)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await asyncpg.create_pool(database_url, min_size=0, max_size=4)
        try:
            yield
        finally:
            await app.state.pool.close()

    app = FastAPI(title="Velocity colony service", version="0.1.0", lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Alive."""
        return {"status": "alive"}

    @app.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        """Broker and database reachable."""

        async def database() -> None:
            await request.app.state.pool.fetchval("SELECT 1")

        checks: dict[str, Any] = {"broker": lambda: probe_broker(options), "database": database}
        ready, body = await run_checks(checks)
        return JSONResponse(body, status_code=200 if ready else 503)

    return app


def main() -> None:
    settings = load_settings(ColonySettings)
    configure_logging(settings, "colony")
    uvicorn.run(create_app(settings), host=settings.HOST, port=settings.PORT, log_config=None)


if __name__ == "__main__":
    main()
