"""Topic provisioning against the real broker: idempotent, and loud about wrong shapes."""

from __future__ import annotations

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from infra.topics import ALL_TOPICS, TopicMismatchError, TopicNames, provision_topics
from tests.conftest import Isolated

pytestmark = pytest.mark.integration


async def partition_counts(admin: AIOKafkaAdminClient, prefix: str) -> dict[str, int]:
    described = await admin.describe_topics(
        [n for n in await admin.list_topics() if n.startswith(prefix)]
    )
    return {d["topic"].removeprefix(prefix): len(d["partitions"]) for d in described}


async def test_provisioning_twice_creates_once_and_then_nothing(isolated: Isolated) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=isolated.bootstrap_servers)
    await admin.start()
    try:
        names = TopicNames(isolated.topic_prefix)
        created = await provision_topics(admin, names)
        again = await provision_topics(admin, names)
        assert sorted(created) == sorted(names.of(spec) for spec in ALL_TOPICS)
        assert again == []
        counts = await partition_counts(admin, isolated.topic_prefix)
        assert counts == {spec.name: spec.partitions for spec in ALL_TOPICS}
    finally:
        await admin.close()


async def test_a_topic_with_the_wrong_partition_count_is_reported(isolated: Isolated) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=isolated.bootstrap_servers)
    await admin.start()
    try:
        names = TopicNames(isolated.topic_prefix)
        await admin.create_topics([NewTopic(names.events, 2, 1)])
        with pytest.raises(TopicMismatchError) as refused:
            await provision_topics(admin, names)
        assert f"{names.events} has 2 partitions, expected 6" in str(refused.value)
    finally:
        await admin.close()
