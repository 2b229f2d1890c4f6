"""Sending the colony's measurements to `colony.metrics` (the projector stores them)."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer

from infra.topics import METRICS
from ledger.metrics import Metric, MetricName, MetricWire


class MetricEmitter:
    """Fire-and-forget metric records; the metric id makes a re-sent one count once."""

    def __init__(self, producer: AIOKafkaProducer, topic: str, wire: MetricWire) -> None:
        self.producer = producer
        self.topic = topic
        self.wire = wire
        # Records go to the partitions in turn (a metric has no key to hash): aiokafka's
        # own choice for an unkeyed record rebuilt the partition sets for every send.
        self._partitions = itertools.cycle(range(METRICS.partitions))

    async def emit(
        self,
        name: MetricName,
        value: float,
        labels: dict[str, str],
        metric_id: str,
        mission_id: str | None = None,
        trace_id: str | None = None,
    ) -> None:
        metric = Metric(
            metric_id=metric_id,
            name=name,
            value=value,
            labels=labels,
            mission_id=mission_id,
            trace_id=trace_id,
            recorded_at=datetime.now(UTC),
        )
        await self.producer.send(
            self.topic, self.wire.encode(metric), partition=next(self._partitions)
        )

    async def provider_call(
        self, provider: str, operation: str, outcome: str, latency_ms: float
    ) -> None:
        """The providers' `Guarded` report: one provider_call metric per attempt."""
        labels = {"provider": provider, "operation": operation, "outcome": outcome}
        await self.emit("provider_call", latency_ms, labels, str(uuid.uuid4()))
