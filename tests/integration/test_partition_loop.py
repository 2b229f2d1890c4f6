"""Group membership of the services' consumers (infra/partition_loop.py).

A service stopped cleanly must hand its partitions back at once: a restart (a deploy, a
Ctrl-C and `make run` again) should not wait for the old member's session to expire. The
embedded broker numbers a group's first generation 0, for which aiokafka sends no
LeaveGroup; the loop leaves itself."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka.admin import AIOKafkaAdminClient

from infra.topics import COMMANDS
from ledger.decider import Decider
from ledger.settings import DeciderSettings
from tests.conftest import Isolated
from tests.integration.conftest import eventually, prepared


async def members(bootstrap: str, group: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    [(_error, _group, _state, _type, _protocol, listed)] = response.groups
    return [member[0] for member in listed]


async def test_a_cleanly_stopped_decider_leaves_its_group_at_once(isolated: Isolated) -> None:
    await prepared(isolated)
    group = f"d-{uuid.uuid4().hex[:8]}"
    settings = DeciderSettings(
        DECIDER_GROUP_ID=group,
        KAFKA_TOPIC_PREFIX=isolated.topic_prefix,
        KAFKA_SESSION_TIMEOUT_MS=20_000,  # expiry cannot be what empties the group
    )
    decider = Decider(settings, isolated.bootstrap_servers)
    stop = asyncio.Event()
    running = asyncio.create_task(decider.run(stop))

    async def owns_every_partition() -> bool:
        return decider.loop.ready == set(range(COMMANDS.partitions))

    await eventually(owns_every_partition, 30)
    assert len(await members(isolated.bootstrap_servers, group)) == 1

    stop.set()
    await running

    assert await members(isolated.bootstrap_servers, group) == []
