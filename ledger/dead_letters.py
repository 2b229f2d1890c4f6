"""The dead-letter topic: records a consumer could not use, with the reason and original bytes.

Processing goes on after a dead letter; `velocity deadletters` (ledger CLI) lists them,
and re-driving one re-sends the original bytes, so idempotency still holds.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer, ConsumerRecord
from loguru import logger

from ledger.codec import AvroCodec

DEAD_LETTER_SCHEMA = "velocity.DeadLetter"


class DeadLetters:
    """Publishes dead letters for one consumer (`consumer` names it in every letter)."""

    def __init__(
        self, producer: AIOKafkaProducer, topic: str, codec: AvroCodec, consumer: str
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._codec = codec
        self._consumer = consumer

    async def publish(self, record: ConsumerRecord, reason: str, detail: str) -> None:
        """Send the letter and wait for the broker's acknowledgement."""
        letter = {
            "source_topic": record.topic,
            "source_partition": record.partition,
            "source_offset": record.offset,
            "key": record.key,
            "original": record.value or b"",
            "reason": reason,
            "detail": detail,
            "consumer": self._consumer,
            "failed_at": datetime.now(UTC),
        }
        value = self._codec.encode(DEAD_LETTER_SCHEMA, letter)
        await self._producer.send_and_wait(self._topic, value, key=record.key)
        logger.warning(
            "dead-lettered {}[{}]@{}: {} ({})",
            record.topic,
            record.partition,
            record.offset,
            reason,
            detail,
        )
