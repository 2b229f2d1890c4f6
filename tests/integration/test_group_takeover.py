"""A decider restarted after a kill -9 takes its partitions back without waiting for the
killed member's session to expire (infra/group_takeover.py)."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from pathlib import Path

import asyncpg
import pytest
from loguru import logger

from infra.group_takeover import remove_dead_predecessors
from infra.processes import free_port
from tests.conftest import Isolated
from tests.integration.conftest import decider_process, eventually, logged, prepared

pytestmark = pytest.mark.integration
SESSION_MS = 20_000
"""Long enough to tell apart: the embedded broker holds a join for half a session, and a
killed member for its whole session; with its member removed the restart owns its
partitions ~10 s after starting, without ~30 s."""


async def test_a_restarted_decider_removes_its_killed_predecessor_from_the_group(
    isolated: Isolated, tmp_path: Path
) -> None:
    await prepared(isolated)
    log_path = tmp_path / "d.log"
    decider = decider_process(isolated, f"takeover-{uuid.uuid4().hex[:6]}", log_path)
    decider.env["KAFKA_SESSION_TIMEOUT_MS"] = str(SESSION_MS)
    decider.start()
    try:
        await eventually(lambda: logged(log_path, "owns partitions", 1), timeout_s=60)
        first = await eventually(lambda: _member_heartbeats(isolated), timeout_s=10)
        decider.kill()
        decider.start()
        await eventually(
            lambda: logged(log_path, "owns partitions", 2), timeout_s=SESSION_MS / 1000 + 2
        )
        later = await _member_heartbeats(isolated)
    finally:
        decider.stop()
    text = await asyncio.to_thread(log_path.read_text)
    assert f"removed dead predecessor {next(iter(first.values()))}" in text
    assert not set(first) & set(later), "the dead instance's heartbeat is forgotten"


async def _member_heartbeats(slice_: Isolated) -> dict[str, str]:
    """{instance: member id} of the decider heartbeats that carry a group membership."""
    connection = await asyncpg.connect(slice_.database_url)
    try:
        rows = await connection.fetch(
            "SELECT instance, details FROM service_heartbeats WHERE service = 'decider'"
        )
    finally:
        await connection.close()
    found = {row["instance"]: json.loads(row["details"]).get("members", {}) for row in rows}
    return {instance: next(iter(m.values())) for instance, m in found.items() if m}


async def test_a_takeover_the_broker_does_not_answer_gives_way_to_joining(
    isolated: Isolated,
) -> None:
    """Best effort: a start is never held by removing predecessors (it joins, and they
    are dropped when their sessions expire); the dead heartbeat is kept for a later try."""
    await prepared(isolated)
    pool = await asyncpg.create_pool(isolated.database_url, min_size=1, max_size=2)
    dead = f"{socket.gethostname()}:{2**22 + 7}"  # above Linux's largest pid: surely gone
    details = json.dumps({"members": {"velocity-decider": "aiokafka-dead"}})
    try:
        await pool.execute(
            "INSERT INTO service_heartbeats (service, instance, started_at, last_seen_at,"
            " details) VALUES ('decider', $1, now(), now(), $2::jsonb)",
            dead,
            details,
        )
        logged: list[str] = []
        sink = logger.add(lambda message: logged.append(str(message)), level="WARNING")
        try:
            unanswered = {"bootstrap_servers": f"127.0.0.1:{free_port()}"}
            await remove_dead_predecessors(pool, "decider", unanswered)
        finally:
            logger.remove(sink)
        kept = await pool.fetchval(
            "SELECT count(*) FROM service_heartbeats WHERE instance = $1", dead
        )
    finally:
        await pool.close()
    assert any("not removed from their groups" in line for line in logged), logged
    assert kept == 1
