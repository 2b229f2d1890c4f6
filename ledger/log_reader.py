"""Reading topic partitions from the beginning to their current end.

The end is the fetch high-water mark, not ListOffsets: the embedded Tansu broker
answers ListOffsets wrongly (see DESIGN.md), while the high-water mark carried by
every fetch response is right there and on real Kafka alike.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition


async def read_to_end(
    consumer: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    poll_ms: int = 200,
    starts: Mapping[TopicPartition, int] | None = None,
) -> AsyncIterator[tuple[TopicPartition, list[ConsumerRecord]]]:
    """Yield every record of `partitions` (from `starts`, else their beginning) up to the
    end seen when each is reached, a partition's batch at a time.

    `consumer` must have no group subscription; it is assigned `partitions` here.
    """
    async for batches in fetches_to_end(consumer, partitions, poll_ms, starts):
        for partition, records in batches.items():
            yield partition, records


async def fetches_to_end(
    consumer: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    poll_ms: int = 200,
    starts: Mapping[TopicPartition, int] | None = None,
) -> AsyncIterator[dict[TopicPartition, list[ConsumerRecord]]]:
    """As `read_to_end`, a fetch (the batches of several partitions) at a time."""
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    for partition, offset in (starts or {}).items():
        if offset > 0:
            consumer.seek(partition, offset)
    remaining = set(partitions)
    while remaining:
        batches = await consumer.getmany(*remaining, timeout_ms=poll_ms)
        if batches:
            yield batches
        for partition in list(remaining):
            end = consumer.highwater(partition)
            if end is not None and await consumer.position(partition) >= end:
                remaining.discard(partition)


async def partition_ends(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], poll_ms: int = 200
) -> dict[TopicPartition, int]:
    """The high-water mark of each partition, learnt from a fetch at its beginning."""
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    ends: dict[TopicPartition, int] = {}
    while len(ends) < len(partitions):
        await consumer.getmany(*partitions, timeout_ms=poll_ms, max_records=1)
        for partition in partitions:
            end = consumer.highwater(partition)
            if end is not None:
                ends[partition] = end
    return ends
