"""Types for asyncpg connections, whether taken from a pool or opened directly."""

from __future__ import annotations

import asyncpg
from asyncpg.pool import PoolConnectionProxy

DATABASE_OUTAGES: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
)
"""What PostgreSQL going away (or restarting) raises: the connection refused, reset,
closed mid-statement, or left mid-protocol (asyncpg's InternalClientError "another
operation is in progress"). Every service treats these as an outage to wait out."""

Connection = asyncpg.Connection | PoolConnectionProxy
Queryable = asyncpg.Connection | PoolConnectionProxy | asyncpg.Pool

CONNECT_TIMEOUT_S = 5.0
COMMAND_TIMEOUT_S = 30.0
"""No statement of a service may wait forever: a PostgreSQL that stops mid-query, or a
socket left half-open by a restart, must surface as an error the caller retries."""


def sql_list(values: tuple[str, ...]) -> str:
    """Constant strings as an SQL list, for statements built once from the code's own names
    (statuses): a literal list lets the planner use an index as a parameter array would."""
    return ", ".join("'" + value.replace("'", "''") + "'" for value in values)


async def keep_session(connection: asyncpg.Connection) -> None:
    """A pooled connection's reset on release, beyond the rollback asyncpg always does:
    none. No service leaves session state (settings, LISTEN, session-level locks) on a
    pooled connection, so asyncpg's default reset statement would cost every query a
    second round trip for nothing."""


async def service_pool(database_url: str, max_size: int) -> asyncpg.Pool:
    """The pool of a long-running service: bounded connects and statements."""
    pool: asyncpg.Pool = await asyncpg.create_pool(
        database_url,
        min_size=1,
        max_size=max_size,
        timeout=CONNECT_TIMEOUT_S,
        command_timeout=COMMAND_TIMEOUT_S,
        reset=keep_session,
    )
    return pool
