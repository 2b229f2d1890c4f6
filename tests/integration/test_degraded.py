"""The root with its broker or database down: structured 503s for what it cannot do,
answers for what it can, and nothing a client was told was accepted is lost."""

from __future__ import annotations

import asyncio
import uuid
from functools import partial
from pathlib import Path

import asyncpg
import httpx
import pytest

from infra.broker import start_broker
from infra.postgres import start_postgres
from infra.processes import free_port
from tests.conftest import Infrastructure, Isolated, create_database
from tests.factories import command, request_body
from tests.faults import TcpProxy
from tests.integration.conftest import (
    archived,
    command_sender,
    eventually,
    ledger_services,
    prepared,
    root_api,
)

pytestmark = pytest.mark.integration
MISSION = {"type": "oracle", "mode": "assisted", "objective": "risk?", "project_id": "atlas"}


async def projected(client: httpx.AsyncClient, mission_id: str) -> bool:
    return (await client.get(f"/missions/{mission_id}")).status_code == 200


async def test_broker_outage_degrades_writes_serves_reads_and_recovers(
    infrastructure: Infrastructure, tmp_path: Path
) -> None:
    real_port = free_port()
    proxy = TcpProxy(real_port)
    await proxy.start()
    broker = await asyncio.to_thread(
        start_broker, tmp_path / "broker.log", port=real_port, advertised_port=proxy.port
    )
    slice_ = Isolated(
        broker.bootstrap_servers,
        await create_database(infrastructure.admin_database_url),
        f"d{uuid.uuid4().hex[:8]}.",
    )
    try:
        await prepared(slice_)
        async with ledger_services(slice_), root_api(slice_, SYNC_WAIT_MS=3_000) as client:
            first = (await client.post("/missions", json=MISSION)).json()["mission_id"]
            await eventually(lambda: projected(client, first))
            await proxy.cut()
            refused = await client.post(
                "/missions", json=MISSION, headers={"Idempotency-Key": "r1"}
            )
            assert refused.status_code == 503
            assert refused.headers["retry-after"]
            body = refused.json()
            assert body["type"] == "urn:velocity:problem:broker_unavailable"
            assert body["degraded"]["dependency"] == "broker"
            assert body["degraded"]["since"]
            read = await client.get(f"/missions/{first}")
            assert read.status_code == 200, "reads are served while the broker is down"
            await proxy.restore()

            async def retried() -> str | None:
                again = await client.post(
                    "/missions", json=MISSION, headers={"Idempotency-Key": "r1"}
                )
                return again.json()["mission_id"] if again.status_code == 202 else None

            second = await eventually(retried, timeout_s=30, pause_s=0.5)
            await eventually(lambda: projected(client, second), timeout_s=30)
            assert await projected(client, first)
    finally:
        await proxy.cut()
        broker.stop()


async def test_database_outage_keeps_intake_open_and_loses_nothing(
    infrastructure: Infrastructure, tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "postgres.log"  # a failed restart says why (PostgresStartError)
    database = await asyncio.to_thread(start_postgres, tmp_path, log, durable=False, port=port)
    slice_ = Isolated(infrastructure.bootstrap_servers, database.url, f"p{uuid.uuid4().hex[:8]}.")
    try:
        await prepared(slice_)
        async with root_api(slice_, SYNC_WAIT_MS=3_000) as client:
            async with ledger_services(slice_):
                first = (await client.post("/missions", json=MISSION)).json()["mission_id"]
                await eventually(lambda: projected(client, first))
            database.stop()
            read = await client.get(f"/missions/{first}")
            assert read.status_code == 503
            assert read.json()["degraded"]["dependency"] == "database"
            ready = await client.get("/readyz")
            for answer in (read, ready):  # no host, port or driver message leaks out
                assert str(port) not in answer.text and "127.0.0.1" not in answer.text
                assert "Connect call failed" not in answer.text
            accepted = await client.post("/missions", json=MISSION)
            assert accepted.status_code == 202, accepted.text
            assert accepted.json()["status"] == "accepted"
            second = accepted.json()["mission_id"]
            database = await asyncio.to_thread(
                start_postgres, tmp_path, log, durable=False, port=port
            )
            async with ledger_services(slice_):
                await eventually(lambda: projected(client, second), timeout_s=30)
            assert await projected(client, first)
    finally:
        database.stop()


async def test_with_the_colony_disabled_intake_is_refused_and_reads_work(
    isolated: Isolated,
) -> None:
    await prepared(isolated)
    async with root_api(isolated, COLONY_ENABLED=False) as client:
        refused = await client.post("/missions", json=MISSION)
        listed = await client.get("/missions")
    assert refused.status_code == 503
    assert refused.json()["type"] == "urn:velocity:problem:colony_disabled"
    assert listed.status_code == 200


async def test_the_projector_rides_out_a_database_restart_without_exiting_or_parking(
    infrastructure: Infrastructure, tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "postgres.log"  # a failed restart says why (PostgresStartError)
    database = await asyncio.to_thread(start_postgres, tmp_path, log, durable=False, port=port)
    slice_ = Isolated(infrastructure.bootstrap_servers, database.url, f"q{uuid.uuid4().hex[:8]}.")
    missions = [str(uuid.uuid4()) for _ in range(5)]
    try:
        await prepared(slice_)
        async with ledger_services(slice_) as (_, projector), command_sender(slice_) as sender:
            await sender.send(command(missions[0], request_body()))
            await eventually(lambda: archived(slice_.database_url, missions[0]))
            database.stop()
            await sender.send(*(command(m, request_body()) for m in missions[1:]))
            await asyncio.sleep(3)  # the projector fails its batch and backs off meanwhile
            database = await asyncio.to_thread(
                start_postgres, tmp_path, log, durable=False, port=port
            )
            for mission_id in missions:
                await eventually(partial(archived, slice_.database_url, mission_id), 40)
            retries = projector.applier.retries
            connection = await asyncpg.connect(slice_.database_url)
            try:
                parked = await connection.fetchval("SELECT count(*) FROM projection_parked")
            finally:
                await connection.close()
    finally:
        database.stop()
    assert retries >= 1, "the batch was retried, not dropped or parked"
    assert parked == 0
