"""Where a running local stack's embedded broker and database listen.

`velocity stack run` writes VELOCITY_DATA_DIR/stack.json while it runs, so operator
commands (`velocity ledger verify`, ...) in another terminal find the embedded
infrastructure without the free ports being typed in. Real infrastructure always
comes from KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL.
"""

from __future__ import annotations

import json
from pathlib import Path

from infra.config import CommonSettings, fail_configuration

FILENAME = "stack.json"


def write_stack_file(data_dir: Path, bootstrap: str, database_url: str) -> Path:
    path = data_dir / FILENAME
    path.write_text(json.dumps({"bootstrap_servers": bootstrap, "database_url": database_url}))
    return path


def infrastructure_for(settings: CommonSettings) -> tuple[str, str]:
    """Broker and database: from the environment, else from the running local stack."""
    bootstrap = settings.KAFKA_BOOTSTRAP_SERVERS
    database = settings.DATABASE_URL.get_secret_value() if settings.DATABASE_URL else None
    path = settings.VELOCITY_DATA_DIR / FILENAME
    if (bootstrap is None or database is None) and path.exists():
        running = json.loads(path.read_text())
        bootstrap = bootstrap or running["bootstrap_servers"]
        database = database or running["database_url"]
    if bootstrap is None or database is None:
        missing = "KAFKA_BOOTSTRAP_SERVERS" if bootstrap is None else "DATABASE_URL"
        fail_configuration(
            f"{missing}: not set, and no running local stack in {path} (start one with `make run`)"
        )
    return bootstrap, database
