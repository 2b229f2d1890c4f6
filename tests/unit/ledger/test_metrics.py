"""What a metric record may carry (ledger/metrics.py): Prometheus exposes its labels on
every scrape, so a record a plain Kafka client writes with labels beyond Prometheus'
names or of any length is refused (the projector dead-letters it), naming the field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ledger.metrics import MAX_LABELS, Metric, MetricWire
from ledger.wire import InvalidRecordError


def record(labels: dict[str, str]) -> bytes:
    """A record as any producer could encode it from the schema, unchecked."""
    metric = Metric.model_construct(
        metric_id="m1",
        name="provider_call",
        value=1.0,
        labels=labels,
        recorded_at=datetime.now(UTC),
    )
    return MetricWire().encode(metric)


@pytest.mark.parametrize(
    ("labels", "named"),
    [
        ({"provider": "x" * 257}, "labels.provider"),
        ({"not a name": "x"}, "labels.not a name.[key]"),
        ({f"l{i}": "x" for i in range(MAX_LABELS + 1)}, "labels"),
    ],
)
def test_labels_beyond_what_prometheus_exposes_are_refused_naming_the_field(
    labels: dict[str, str], named: str
) -> None:
    with pytest.raises(InvalidRecordError) as refused:
        MetricWire().decode(record(labels))
    assert refused.value.reason == "invalid_metric"
    assert refused.value.detail.startswith(f"{named}:"), refused.value.detail


def test_labels_the_colony_and_the_root_send_are_taken() -> None:
    labels = {"tool": "create_mission", "caller": "service:intake", "arguments_hash": "0" * 64}
    assert MetricWire().decode(record(labels)).labels == labels
