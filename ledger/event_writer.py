"""Appending decided events to `mission.events`: whole commands, in order, fail-stop.

A command's events (a writeback proposal and its approval request; a task result, the
budget it broke and the failure that follows) go into one Kafka record batch, which the
broker appends atomically: a command is never half in the log, whatever dies when. A
partition's batches are sent one at a time, each acknowledged (acks=all) before the next
leaves, so no record of a partition is ever written after an earlier one failed; the
caller (the decider) then drops that partition's state and rebuilds it from the log.

The single writer also checks it is single: each batch must land exactly where the
partition ended after its rebuild and its own earlier batches. A batch that lands further
on means someone else wrote there meanwhile (a decider that stalled past its session and
woke up after the partition moved, or a forger); the writer then fails stop too, and the
rebuild reads the log as every reader does (first writer wins), so the decider's state is
the history again before it decides anything more.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from ledger.faults import Fault
from ledger.wire import KafkaRecord

CommandRecords = list[KafkaRecord]


class ForeignWriteError(RuntimeError):
    """A batch landed past the offset this writer expected: another writer appended."""


class EventWriter:
    """Writes one partition's decided commands as atomic record batches."""

    def __init__(
        self,
        producer: AIOKafkaProducer,
        topic: str,
        max_batch_bytes: int,
        fault: Fault | None = None,
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.max_batch_bytes = max_batch_bytes
        self.fault = fault
        self.batches = 0
        self.ends: dict[int, int] = {}
        """partition -> the offset this writer's next batch must land at."""

    async def write(self, partition: int, commands: list[CommandRecords]) -> None:
        """Append every command's records to `partition`, each command within one batch;
        raises (nothing further sent) when a batch is not acknowledged."""
        batch = self.producer.create_batch()
        for records in commands:
            needed = sum(_upper_bound(record) for record in records)
            if batch.record_count() and batch.size() + needed > self.max_batch_bytes:
                await self._send(batch, partition)
                batch = self.producer.create_batch()
            for record in records:
                appended = batch.append(
                    timestamp=None, key=record.key, value=record.value, headers=record.headers
                )
                assert appended is not None, "a command's records outgrew an empty batch"
        if batch.record_count():
            await self._send(batch, partition)

    async def _send(self, batch: Any, partition: int) -> None:
        self.batches += 1
        if self.fault is not None:
            self.fault.before_batch(self.batches)
        count = batch.record_count()
        delivered = await self.producer.send_batch(batch, self.topic, partition=partition)
        landed = (await delivered).offset
        expected = self.ends.get(partition)
        self.ends[partition] = landed + count
        if self.fault is not None:
            self.fault.after_batch(self.batches)
        if expected is not None and landed != expected:
            raise ForeignWriteError(
                f"batch landed at offset {landed} of partition {partition}, expected {expected}:"
                " another writer appended in between"
            )


def _upper_bound(record: KafkaRecord) -> int:
    size: int = DefaultRecordBatchBuilder.estimate_size_in_bytes(
        record.key, record.value, record.headers
    )
    return size
