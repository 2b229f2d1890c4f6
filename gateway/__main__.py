"""`python -m gateway`: serve the root API on ROOT_HOST:ROOT_PORT."""

from __future__ import annotations

import uvicorn

from gateway.app import create_app
from gateway.settings import RootSettings
from infra.config import load_settings
from infra.structured_logs import configure_logging


def main() -> None:
    settings = load_settings(RootSettings)
    configure_logging(settings, "root")
    settings.require_infrastructure()
    uvicorn.run(
        create_app(settings),
        host=settings.ROOT_HOST,
        port=settings.ROOT_PORT,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
