"""The topics the projector reads, how their records decode, and the views fed from each."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic

from infra.topics import ALL_TOPICS, DEAD_LETTERS, EVENTS, METRICS, TopicNames, TopicSpec
from ledger.codec import AvroCodec
from ledger.dead_letters import DeadLetter, DeadLetterWire
from ledger.events import RecordedEvent
from ledger.metrics import Metric, MetricWire
from ledger.wire import InvalidRecordError, LedgerWire
from projections.approvals import ApprovalsProjection
from projections.archive import EventArchive
from projections.dead_letter_view import DeadLettersProjection
from projections.evidence import EvidenceProjection
from projections.metric_aggregates import MetricAggregatesProjection, SeriesLimits
from projections.missions import MissionsProjection
from projections.projection import Projected, Projection, R, Unusable
from projections.releases import ReleasesProjection
from projections.settings import ProjectorSettings
from projections.tasks import TasksProjection


def all_projections() -> list[Projection[RecordedEvent]]:
    """Every view of `mission.events`, in the order each batch applies them: the archive
    first, missions before the views that look missions up."""
    return [
        EventArchive(),
        MissionsProjection(),
        ApprovalsProjection(),
        TasksProjection(),
        EvidenceProjection(),
        ReleasesProjection(),
    ]


@dataclass(frozen=True)
class Label:
    """What a record is parked under, and how it is listed."""

    key: str
    kind: str
    sequence: int | None = None


@dataclass(frozen=True)
class Feed(Generic[R]):
    """A topic, how to decode its records, and the projections fed from it."""

    topic: TopicSpec
    decode: Callable[[bytes], R]
    label: Callable[[R], Label]
    projections: Sequence[Projection[R]]
    group_suffix: str = ""
    rereadable: bool = False
    """Whether the topic may be read again from its start when it comes back emptied (the
    memory-only broker restarted): true where records carry ids that make a re-read
    harmless (metrics, dead letters); never for the ledger, which is restored instead."""
    fetch_wait_ms: int | None = None
    """How long an empty fetch waits. None takes KAFKA_FETCH_WAIT_MS: someone waits on
    those views (the ledger's requests, the metrics of a mission that just failed); dead
    letters, which an operator lists, wait longer."""

    def project(
        self,
        partition: int,
        offset: int,
        raw: bytes,
        record_key: bytes | None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> Projected[R] | Unusable:
        """The record ready for the projections, or why it cannot be (undecodable)."""
        try:
            event = self.decode(raw)
        except InvalidRecordError as error:
            key = record_key.decode(errors="replace") if record_key else None
            return Unusable(partition, offset, record_key, raw, key, error.reason, error.detail)
        label = self.label(event)
        traceparent = next((v.decode() for k, v in headers if k == "traceparent" and v), None)
        return Projected(
            partition,
            offset,
            record_key,
            raw,
            event,
            label.key,
            label.kind,
            label.sequence,
            traceparent,
        )


def _event_label(event: RecordedEvent) -> Label:
    return Label(event.meta.mission_id, event.meta.event_type, event.meta.sequence)


def ledger_feed(
    projections: Sequence[Projection[RecordedEvent]] | None = None,
    codec: AvroCodec | None = None,
) -> Feed[RecordedEvent]:
    return Feed(
        EVENTS,
        LedgerWire(codec).decode_event,
        _event_label,
        list(projections or all_projections()),
    )


def metrics_feed(limits: SeriesLimits) -> Feed[Metric]:
    """`limits`: the label combinations each family keeps (the projector's settings)."""
    return Feed(
        METRICS,
        MetricWire().decode,
        lambda metric: Label(metric.metric_id, metric.name),
        [MetricAggregatesProjection(limits)],
        "-metrics",
        rereadable=True,
    )


def dead_letter_feed(topics: TopicNames) -> Feed[DeadLetter]:
    """Letters about this ledger's topics (`topics`): one about any other topic is itself
    set aside (`invalid_dead_letter`), so the letters' counts by topic and reason stay a
    few rows whoever writes the dead-letter topic (the colony may: it sets events aside)."""
    wire = DeadLetterWire()
    known = frozenset(topics.of(spec) for spec in ALL_TOPICS)

    def decode(raw: bytes) -> DeadLetter:
        letter = wire.decode(raw)
        if letter.source_topic not in known:
            topic = letter.source_topic[:80]
            raise InvalidRecordError("invalid_dead_letter", f"source_topic: {topic!r} is unknown")
        return letter

    return Feed(
        DEAD_LETTERS,
        decode,
        lambda letter: Label(
            f"{letter.source_topic}/{letter.source_partition}/{letter.source_offset}", "DeadLetter"
        ),
        [DeadLettersProjection()],
        "-deadletters",
        rereadable=True,
        fetch_wait_ms=1_000,
    )


def all_feeds(settings: ProjectorSettings) -> list[Feed[Any]]:
    """What a projector reads, as its settings configure it: the ledger's events first."""
    topics = TopicNames(settings.KAFKA_TOPIC_PREFIX)
    return [ledger_feed(), metrics_feed(settings.series_limits), dead_letter_feed(topics)]
