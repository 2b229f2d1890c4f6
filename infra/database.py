"""Types for asyncpg connections, whether taken from a pool or opened directly."""

from __future__ import annotations

import asyncpg
from asyncpg.pool import PoolConnectionProxy

Connection = asyncpg.Connection | PoolConnectionProxy
Queryable = asyncpg.Connection | PoolConnectionProxy | asyncpg.Pool
