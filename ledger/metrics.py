"""Operational measurements on `colony.metrics`: the model and its Avro encoding.

The colony emits them (provider calls, stage latency, policy decisions, approval waits,
mission outcomes and durations); the projector stores each once and counts it into the
Prometheus families of projections/metric_aggregates.py.
They are facts about operations, not about missions' state, so they live outside the
hash-chained ledger.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from ledger.codec import AvroCodec
from ledger.wire import ModelWire

SCHEMA = "velocity.metrics.MetricRecorded"
MetricName = Literal[
    "provider_call",
    "stage_latency",
    "policy_decision",
    "approval_wait",
    "mission_outcome",
    "mission_duration",
    "mcp_call",
]
LabelName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
LabelValue = Annotated[str, StringConstraints(max_length=256)]
MAX_LABELS = 16


class Metric(BaseModel):
    """One measurement (schemas_avro/velocity.metrics.MetricRecorded.avsc)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    metric_id: str = Field(min_length=1)
    name: MetricName
    value: float = Field(allow_inf_nan=False)
    """Finite: a NaN or infinity added to a histogram's sum would stay in it for good."""
    labels: dict[LabelName, LabelValue] = Field(max_length=MAX_LABELS)
    """Bounded, as Prometheus exposes them: a label as long as a record allows would make
    every scrape that long (how many label combinations a family keeps is bounded where
    they are counted, projections/metric_aggregates.py)."""
    mission_id: str | None = None
    trace_id: str | None = None
    recorded_at: datetime


class MetricWire(ModelWire[Metric]):
    """Encodes and decodes metric records."""

    def __init__(self, codec: AvroCodec | None = None) -> None:
        super().__init__(SCHEMA, Metric, "invalid_metric", codec)
