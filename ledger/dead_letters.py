"""The dead-letter topic: records a consumer could not use, with the reason and original bytes.

Processing goes on after a dead letter. The projector keeps every letter in PostgreSQL
(`dead_letters`), the root counts them on /metrics (`velocity_dead_letters_total`) and
shows the ones not re-driven on /readyz, and `velocity deadletters list|redrive` lists
them and re-sends a command's original bytes, whose command id the ledger applies once.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer, ConsumerRecord
from loguru import logger
from pydantic import BaseModel, ConfigDict

from ledger.codec import AvroCodec
from ledger.wire import DeadLetterReason, ModelWire

DEAD_LETTER_SCHEMA = "velocity.DeadLetter"


class DeadLetter(BaseModel):
    """One letter (schemas_avro/velocity.DeadLetter.avsc)."""

    model_config = ConfigDict(frozen=True)

    source_topic: str
    source_partition: int
    source_offset: int
    key: bytes | None
    original: bytes
    reason: DeadLetterReason
    detail: str
    consumer: str
    failed_at: datetime


class DeadLetterWire(ModelWire[DeadLetter]):
    """Encodes and decodes dead letters."""

    def __init__(self, codec: AvroCodec | None = None) -> None:
        super().__init__(DEAD_LETTER_SCHEMA, DeadLetter, "invalid_dead_letter", codec)


class DeadLetters:
    """Publishes dead letters for one consumer (`consumer` names it in every letter)."""

    def __init__(
        self, producer: AIOKafkaProducer, topic: str, codec: AvroCodec, consumer: str
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._wire = DeadLetterWire(codec)
        self._consumer = consumer

    async def publish(self, record: ConsumerRecord, reason: DeadLetterReason, detail: str) -> None:
        """Send the letter and wait for the broker's acknowledgement."""
        letter = DeadLetter(
            source_topic=record.topic,
            source_partition=record.partition,
            source_offset=record.offset,
            key=record.key,
            original=record.value or b"",
            reason=reason,
            detail=detail,
            consumer=self._consumer,
            failed_at=datetime.now(UTC),
        )
        await self._producer.send_and_wait(self._topic, self._wire.encode(letter), key=record.key)
        logger.warning(
            "dead-lettered {}[{}]@{}: {} ({})",
            record.topic,
            record.partition,
            record.offset,
            reason,
            detail,
        )
