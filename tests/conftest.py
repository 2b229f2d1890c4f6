"""Shared fixtures: the embedded broker and PostgreSQL, started once per test session
(`make test` runs two pytest-xdist workers: each is a session with its own).

Set VELOCITY_TEST_KAFKA_BOOTSTRAP_SERVERS and VELOCITY_TEST_DATABASE_URL to run the
suite against real infrastructure instead. Each test gets its own topic prefix and
its own database, so tests never see each other's records or rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from infra.broker import start_broker
from infra.postgres import start_postgres


@dataclass(frozen=True)
class Infrastructure:
    """Where the session's broker and PostgreSQL server are."""

    bootstrap_servers: str
    admin_database_url: str
    log_dir: Path


@dataclass(frozen=True)
class Isolated:
    """One test's own topic prefix and database on the shared infrastructure."""

    bootstrap_servers: str
    database_url: str
    topic_prefix: str

    def environment(self) -> dict[str, str]:
        """Environment variables that point a Velocity process at this test's slice."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "DATABASE_URL": self.database_url,
            "KAFKA_TOPIC_PREFIX": self.topic_prefix,
        }


@pytest.fixture(scope="session")
def infrastructure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infrastructure]:
    log_dir = tmp_path_factory.mktemp("infra-logs")
    external_kafka = os.environ.get("VELOCITY_TEST_KAFKA_BOOTSTRAP_SERVERS")
    external_db = os.environ.get("VELOCITY_TEST_DATABASE_URL")
    broker = None if external_kafka else start_broker(log_dir / "broker.log")
    database = (
        None
        if external_db
        else start_postgres(tmp_path_factory.mktemp("pg"), log_dir / "pg.log", durable=False)
    )
    try:
        yield Infrastructure(
            bootstrap_servers=external_kafka or broker.bootstrap_servers,  # type: ignore[union-attr]
            admin_database_url=external_db or database.url,  # type: ignore[union-attr]
            log_dir=log_dir,
        )
    finally:
        if broker:
            broker.stop()
        if database:
            database.stop()


async def create_database(admin_url: str) -> str:
    """A new empty database on the server of `admin_url`; returns its URL."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture
async def isolated(infrastructure: Infrastructure) -> AsyncIterator[Isolated]:
    yield Isolated(
        bootstrap_servers=infrastructure.bootstrap_servers,
        database_url=await create_database(infrastructure.admin_database_url),
        topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
    )
