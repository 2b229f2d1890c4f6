"""Evidence: artifacts (content-addressed), reviewer packets and policy decisions.

These are what an operator opens to see why an answer can be trusted, and what the
policy-block dashboard counts.
"""

from __future__ import annotations

from functools import singledispatch

from ledger.events import (
    ArtifactRecorded,
    ArtifactsRecorded,
    EventBody,
    EventMeta,
    ReviewerPacketRecorded,
    ToolRequestAllowed,
    ToolRequestDenied,
    recorded_artifacts,
)
from projections.archive import FollowsArchive
from projections.projection import ProjectedEvent, Write, kinds_written_by

ARTIFACT = """
INSERT INTO artifacts (mission_id, artifact_id, kind, content_hash, source, size_bytes, recorded_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (mission_id, artifact_id) DO NOTHING
"""
PACKET = """
INSERT INTO reviewer_packets (mission_id, sequence, packet_hash, verdict, output, checks,
                              recorded_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
"""
DECISION = """
INSERT INTO policy_decisions (mission_id, sequence, task_id, tool, decision, rule_id, reason,
                              mission_type, decided_at)
VALUES ($1, $2, $3, $4, $5, $6, $7,
        (SELECT mission_type FROM missions WHERE mission_id = $1), $8)
"""


@singledispatch
def evidence_writes(body: EventBody, meta: EventMeta) -> list[Write]:
    return []


@evidence_writes.register
def _artifacts(body: ArtifactRecorded | ArtifactsRecorded, meta: EventMeta) -> list[Write]:
    return [
        (
            ARTIFACT,
            (
                meta.mission_id,
                artifact.artifact_id,
                artifact.kind,
                artifact.content_hash,
                artifact.source,
                artifact.size_bytes,
                meta.occurred_at,
            ),
        )
        for artifact in recorded_artifacts(body)
    ]


@evidence_writes.register
def _packet(body: ReviewerPacketRecorded, meta: EventMeta) -> list[Write]:
    args = (
        meta.mission_id,
        meta.sequence,
        body.packet_hash,
        body.verdict,
        body.output,
        body.checks,
        meta.occurred_at,
    )
    return [(PACKET, args)]


def _decision(
    decision: str, body: ToolRequestAllowed | ToolRequestDenied, meta: EventMeta
) -> Write:
    return (
        DECISION,
        (
            meta.mission_id,
            meta.sequence,
            body.task_id,
            body.tool,
            decision,
            body.rule_id,
            body.reason,
            meta.occurred_at,
        ),
    )


@evidence_writes.register
def _allowed(body: ToolRequestAllowed, meta: EventMeta) -> list[Write]:
    return [_decision("allowed", body, meta)]


@evidence_writes.register
def _denied(body: ToolRequestDenied, meta: EventMeta) -> list[Write]:
    return [_decision("denied", body, meta)]


class EvidenceProjection(FollowsArchive):
    """Projection `evidence` into artifacts, reviewer_packets and policy_decisions."""

    name = "evidence"
    rows_per_key = True
    tables: tuple[str, ...] = ("artifacts", "reviewer_packets", "policy_decisions")

    kinds = kinds_written_by(evidence_writes)

    def writes(self, item: ProjectedEvent) -> list[Write]:
        return evidence_writes(item.event.body, item.event.meta)
