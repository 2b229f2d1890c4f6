"""Every Kafka topic the ledger uses, declared once, and idempotent provisioning.

Provision before any client starts: a topic auto-created by a client gets the broker's
default partition count, and the decider relies on `mission.commands` and
`mission.events` having the same count (a mission's commands and events share a
partition number).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import murmur2
from loguru import logger

PARTITIONS = 6
TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True)
class TopicSpec:
    """A topic's logical name, partition count and configs."""

    name: str
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)


FOREVER = {"retention.ms": "-1", "retention.bytes": "-1"}
WEEK = {"retention.ms": str(7 * 24 * 3600 * 1000)}

COMMANDS = TopicSpec("mission.commands", PARTITIONS, WEEK)
EVENTS = TopicSpec("mission.events", PARTITIONS, FOREVER)
DEAD_LETTERS = TopicSpec("mission.deadletter", 1, FOREVER)
METRICS = TopicSpec("colony.metrics", 3, WEEK)
ALL_TOPICS = (COMMANDS, EVENTS, DEAD_LETTERS, METRICS)


@dataclass(frozen=True)
class TopicNames:
    """Physical topic names: the logical ones behind an optional KAFKA_TOPIC_PREFIX."""

    prefix: str = ""

    def of(self, spec: TopicSpec) -> str:
        return f"{self.prefix}{spec.name}"

    @property
    def commands(self) -> str:
        return self.of(COMMANDS)

    @property
    def events(self) -> str:
        return self.of(EVENTS)

    @property
    def dead_letters(self) -> str:
        return self.of(DEAD_LETTERS)

    @property
    def metrics(self) -> str:
        return self.of(METRICS)


@lru_cache(maxsize=4_096)
def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner gives `key`: Java clients and
    aiokafka agree on it; librdkafka's default (CRC32) does not, hence the decider's check.
    Cached for the missions being worked: aiokafka's murmur2 is pure Python, and the
    decider checks every command (~5 % of its time before)."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


class TopicMismatchError(RuntimeError):
    """A topic exists with a shape the ledger cannot use; never silently ignored."""


async def provision_topics(
    admin: AIOKafkaAdminClient,
    names: TopicNames,
    specs: tuple[TopicSpec, ...] = ALL_TOPICS,
    replication_factor: int = 1,
) -> list[str]:
    """Create missing topics and check existing ones; return the names created.

    Raises TopicMismatchError naming every topic whose partition count differs.
    """
    existing = await _partition_counts(admin)
    wanted = {names.of(spec): spec for spec in specs}
    mismatches = [
        f"{name} has {existing[name]} partitions, expected {spec.partitions}"
        for name, spec in wanted.items()
        if name in existing and existing[name] != spec.partitions
    ]
    if mismatches:
        raise TopicMismatchError("; ".join(mismatches))
    missing = [
        NewTopic(name, spec.partitions, replication_factor, topic_configs=spec.configs)
        for name, spec in wanted.items()
        if name not in existing
    ]
    if missing:
        response = await admin.create_topics(missing)
        failures = [
            f"{topic}: {message or code}"
            for topic, code, message in response.topic_errors
            if code not in (0, TOPIC_ALREADY_EXISTS)
        ]
        if failures:
            raise TopicMismatchError("could not create " + "; ".join(failures))
    created = [topic.name for topic in missing]
    logger.info(
        "topics provisioned: created {}, kept {}", created, sorted(set(wanted) - set(created))
    )
    return created


async def _partition_counts(admin: AIOKafkaAdminClient) -> dict[str, int]:
    topics = await admin.list_topics()
    if not topics:
        return {}
    described = await admin.describe_topics(list(topics))
    return {entry["topic"]: len(entry["partitions"]) for entry in described}
