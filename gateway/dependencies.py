"""The root's connections to the broker and the database, and how their failures look.

Both are lazy and self-healing: the root starts and serves what it can while a
dependency is down, answering 503 with a degraded-state body (which dependency,
since when, when to retry) for what it cannot.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from loguru import logger

from gateway.problems import DependencyDownError, ProblemError
from infra.database import DATABASE_OUTAGES, keep_session
from infra.topics import TopicNames
from ledger.commands import Command
from ledger.metrics import Metric, MetricWire
from ledger.wire import LedgerWire

DATABASE_ERRORS = DATABASE_OUTAGES


class Outages:
    """Remembers since when each dependency has been failing."""

    def __init__(self) -> None:
        self.since: dict[str, datetime] = {}

    def failed(self, dependency: str, error: BaseException) -> DependencyDownError:
        """The 503 to answer; the driver's message is logged, never sent to the caller."""
        first = self.since.setdefault(dependency, datetime.now(UTC))
        logger.warning(
            "{} unavailable since {}: {}", dependency, first.isoformat(), type(error).__name__
        )
        return DependencyDownError(dependency, first)

    def recovered(self, dependency: str) -> None:
        if self.since.pop(dependency, None) is not None:
            logger.info("{} available again", dependency)


class Database:
    """A lazily connecting asyncpg pool whose connection failures become 503 problems."""

    def __init__(self, url: str, outages: Outages) -> None:
        self.url = url
        self.outages = outages
        self._pool: asyncpg.Pool | None = None

    async def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=0,
                max_size=10,
                timeout=3,
                command_timeout=10,
                reset=keep_session,
            )
        return self._pool

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self._run("fetchrow", query, args)
        return row

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self._run("fetchval", query, args)

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        return list(await self._run("fetch", query, args))

    async def execute(self, query: str, *args: Any) -> str:
        return str(await self._run("execute", query, args))

    async def executemany(self, query: str, rows: list[tuple[Any, ...]]) -> None:
        await self._run("executemany", query, (rows,))

    async def _run(self, method: str, query: str, args: tuple[Any, ...]) -> Any:
        try:
            pool = await self.pool()
            result = await getattr(pool, method)(query, *args)
        except DATABASE_ERRORS as error:
            raise self.outages.failed("database", error) from error
        except asyncpg.PostgresError as error:
            logger.warning("database refused a query: {} (SQLSTATE {})", error, error.sqlstate)
            raise ProblemError(
                503,
                "database_error",
                "the database could not answer this request; retry later",
                headers={"Retry-After": "5"},
            ) from error
        self.outages.recovered("database")
        return result

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()


class CommandBus:
    """Appends commands to `mission.commands`, acknowledged by the broker (acks=all)."""

    def __init__(
        self, options: dict[str, Any], topics: TopicNames, outages: Outages, timeout_s: float = 5
    ) -> None:
        self.options = options
        self.topics = topics
        self.outages = outages
        self.timeout_s = timeout_s
        self.wire = LedgerWire()
        self.metric_wire = MetricWire(self.wire.codec)
        self._producer: AIOKafkaProducer | None = None
        self._starting = asyncio.Lock()

    async def send(self, command: Command) -> None:
        """Return once the broker has the command; a 503 problem if it cannot take it."""
        record = self.wire.encode_command(command)
        await self._append(
            self.topics.commands, record.value, record.key, record.headers, record.partition
        )

    async def send_metric(self, metric: Metric) -> None:
        """A measurement of the root's own (an MCP call) on `colony.metrics`."""
        await self._append(self.topics.metrics, self.metric_wire.encode(metric))

    async def _append(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> None:
        try:
            producer = await self._started()
            await asyncio.wait_for(
                producer.send_and_wait(topic, value, key, partition, headers=headers),
                self.timeout_s,
            )
        except (TimeoutError, KafkaError, OSError) as error:
            await self._discard()
            raise self.outages.failed("broker", error) from error
        self.outages.recovered("broker")

    async def _started(self) -> AIOKafkaProducer:
        async with self._starting:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    acks="all",
                    **(self.options | {"request_timeout_ms": int(self.timeout_s * 1000)}),
                )
                try:
                    await asyncio.wait_for(producer.start(), self.timeout_s)
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def _discard(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), self.timeout_s)
            except (TimeoutError, KafkaError, OSError) as error:
                logger.debug("producer stop after failure: {}", error)

    async def close(self) -> None:
        await self._discard()
