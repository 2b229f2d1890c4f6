"""The colony storing artifacts through the real root (colony_consumers/root_client.py)
while the root's view of the mission lags the log: asked again briefly, then an outage."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from datetime import UTC, datetime

import aiohttp
import asyncpg
import pytest

from colony_consumers.root_client import LAG_WAIT_S, Artifact, LaggingError, RootClient
from colony_consumers.settings import LOCAL_ROOT_KEY
from tests.conftest import Isolated
from tests.integration.conftest import prepared, root_server
from tests.integration.test_mission_filters import ROW

pytestmark = pytest.mark.integration


async def test_an_artifact_of_a_mission_the_roots_view_lacks_is_stored_once_it_appears(
    isolated: Isolated,
) -> None:
    """A task's first artifact often reaches the root before the projector has the
    mission: the colony asks again until the view has it, and the store succeeds."""
    await prepared(isolated)
    mission_id = str(uuid.uuid4())
    headers = {"Authorization": f"Bearer {LOCAL_ROOT_KEY}"}
    async with root_server(isolated) as root, aiohttp.ClientSession(headers=headers) as session:
        storing = asyncio.create_task(
            RootClient(session, root).store(Artifact("found it", mission_id, kind="source"))
        )
        await asyncio.sleep(LAG_WAIT_S / 4)
        waited = not storing.done()
        connection = await asyncpg.connect(isolated.database_url)
        try:
            await connection.execute(ROW, mission_id, "running", datetime.now(UTC))
            content_hash = await asyncio.wait_for(storing, LAG_WAIT_S * 2)
            stored = await connection.fetchval(
                "SELECT content FROM artifact_blobs WHERE content_hash = $1", content_hash
            )
        finally:
            await connection.close()
    assert waited, "the store waited for the mission"
    assert content_hash == hashlib.sha256(b"found it").hexdigest()
    assert stored == b"found it"


async def test_a_mission_the_roots_view_never_shows_is_an_outage_after_the_lag_wait(
    isolated: Isolated,
) -> None:
    await prepared(isolated)
    headers = {"Authorization": f"Bearer {LOCAL_ROOT_KEY}"}
    async with root_server(isolated) as root, aiohttp.ClientSession(headers=headers) as session:
        started = time.monotonic()
        with pytest.raises(LaggingError, match="lags the log"):
            await RootClient(session, root).store(Artifact("x", str(uuid.uuid4())))
    assert LAG_WAIT_S <= time.monotonic() - started < LAG_WAIT_S * 3
