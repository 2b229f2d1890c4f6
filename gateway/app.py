"""The FastAPI root: the public authority over missions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from gateway.problems import install_problem_handlers
from gateway.routers import health, missions
from gateway.runtime import GatewayRuntime
from gateway.settings import RootSettings


def create_app(settings: RootSettings) -> FastAPI:
    """The root application, its connections opened and closed with the app."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.runtime = GatewayRuntime.build(settings)
        try:
            yield
        finally:
            await app.state.runtime.close()

    app = FastAPI(
        title="Velocity colony root API",
        version="0.1.0",
        description="Mission intake, audit trail and operator actions over the colony ledger.",
        lifespan=lifespan,
    )
    install_problem_handlers(app)
    app.include_router(health.router)
    app.include_router(missions.router)
    return app
