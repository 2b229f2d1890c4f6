"""Service heartbeats in PostgreSQL: how the root's /readyz knows the decider and
projector are running, on one machine or many."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from loguru import logger

from infra.readiness import NotReady

INTERVAL_S = 2.0
STALE_AFTER_S = 10.0
LOOK_EVERY_S = 0.25
"""How often a service looks whether the partitions it owns (or rebuilds) changed: a
change is written at once, not at the next beat, so `/readyz` and the Health page see an
assignment within a quarter second (a stack start was ready up to 2 s after its last
service owned its partitions)."""
OWNERSHIP = ("partitions", "rebuilding")

UPSERT = """
INSERT INTO service_heartbeats (service, instance, started_at, last_seen_at, details)
VALUES ($1, $2, $3, now(), $4::jsonb)
ON CONFLICT (service, instance)
DO UPDATE SET last_seen_at = now(), details = EXCLUDED.details
"""


def instance_name() -> str:
    """host:pid, unique per running process."""
    return f"{socket.gethostname()}:{os.getpid()}"


FORGET_LONG_GONE = """
DELETE FROM service_heartbeats WHERE last_seen_at < now() - make_interval(secs => $1)
"""
LONG_GONE_S = 86_400
"""A heartbeat not written for a day is a process long gone (most often on a host that
no longer exists: every restart of a container is a new host name), forgotten at the next
start of any service: the table holds a day of starts, not every start ever."""


async def beat_forever(
    pool: asyncpg.Pool, service: str, details: Callable[[], dict[str, Any]] = dict
) -> None:
    """Write a heartbeat every INTERVAL_S, and as soon as the partitions owned change,
    until cancelled; no error stops it (logged). First, forget the heartbeats of processes
    long gone (LONG_GONE_S)."""
    started = datetime.now(UTC)
    instance = instance_name()
    try:
        await pool.execute(FORGET_LONG_GONE, LONG_GONE_S)
    except Exception as error:
        logger.warning("old heartbeats not forgotten: {}", type(error).__name__)
    while True:
        written = details()
        try:
            await pool.execute(UPSERT, service, instance, started, json.dumps(written))
        except Exception as error:
            logger.warning("heartbeat of {} not written: {}", service, type(error).__name__)
        for _ in range(round(INTERVAL_S / LOOK_EVERY_S)):
            await asyncio.sleep(LOOK_EVERY_S)
            if _ownership_changed(written, details()):
                break


def _ownership_changed(written: dict[str, Any], now: dict[str, Any]) -> bool:
    return any(written.get(key) != now.get(key) for key in OWNERSHIP)


async def live_instances(
    connection: asyncpg.Connection | asyncpg.Pool, service: str
) -> list[dict[str, Any]]:
    """Details of each instance of `service` seen within STALE_AFTER_S."""
    rows = await connection.fetch(
        "SELECT details FROM service_heartbeats"
        " WHERE service = $1 AND last_seen_at > now() - make_interval(secs => $2)",
        service,
        STALE_AFTER_S,
    )
    return [json.loads(row["details"]) for row in rows]


LIVE_PROCESSES = """
SELECT service, instance, started_at, last_seen_at, details FROM service_heartbeats
WHERE last_seen_at > now() - make_interval(secs => $1) ORDER BY service, instance
"""


@dataclass(frozen=True)
class LiveProcess:
    """One running process of a consumer service, as its last heartbeat describes it."""

    service: str
    instance: str
    started_at: datetime
    last_seen_at: datetime
    partitions: list[int]
    rebuilding: list[int]


async def live_processes(connection: asyncpg.Connection | asyncpg.Pool) -> list[LiveProcess]:
    """Every process seen within STALE_AFTER_S, by service and instance: with replicas, who
    owns which partition (the root's /readyz only says whether all are owned)."""
    rows = await connection.fetch(LIVE_PROCESSES, STALE_AFTER_S)
    processes = []
    for row in rows:
        details = json.loads(row["details"])
        processes.append(
            LiveProcess(
                row["service"],
                row["instance"],
                row["started_at"],
                row["last_seen_at"],
                sorted(int(p) for p in details.get("partitions", [])),
                sorted(int(p) for p in details.get("rebuilding", {})),
            )
        )
    return processes


async def check_partitions_owned(
    connection: asyncpg.Connection | asyncpg.Pool, service: str, partitions: int
) -> None:
    """Raise unless live instances of `service` together own every partition."""
    instances = await live_instances(connection, service)
    if not instances:
        raise NotReady(f"no {service} heartbeat in the last {STALE_AFTER_S:g}s")
    owned = {p for details in instances for p in details.get("partitions", [])}
    unowned = sorted(set(range(partitions)) - owned)
    rebuilding = {
        int(p): why for details in instances for p, why in details.get("rebuilding", {}).items()
    }
    if unowned:
        known = {p: rebuilding[p] for p in unowned if p in rebuilding}
        suffix = f" (rebuilding: {', '.join(f'{p}: {w}' for p, w in known.items())})" * bool(known)
        raise NotReady(f"{service} partitions without an owner yet: {unowned}{suffix}")
