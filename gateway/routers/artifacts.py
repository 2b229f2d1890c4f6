"""Artifacts: the colony persists them through the root; every role that reads missions
reads them.

Only the colony role stores artifacts (a `service` key opens missions, it cannot add
evidence to them), only into missions that are being worked (planning, running, in review
or awaiting approval), and only with a media type from an allow-list; they are served
back with that type, `nosniff` and a sandboxing CSP, so stored content never runs.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status

from gateway.auth import require
from gateway.command_outcome import derived_id
from gateway.keys import Caller
from gateway.mission_models import (
    MEDIA_TYPES,
    ArtifactBatch,
    ArtifactCreate,
    ArtifactsStored,
    ArtifactStored,
    ContentHash,
)
from gateway.problems import WRITE_STATUSES, ProblemError, problems
from gateway.runtime import GatewayRuntime
from infra.tracing import mission_span
from ledger.commands import RecordArtifacts, StoredArtifact
from ledger.state import WORKING_STATUSES
from projections import queries

router = APIRouter(tags=["artifacts"])
Colony = Annotated[Caller, Depends(require("colony"))]
Reader = Annotated[Caller, Depends(require("service", "colony", "operator", "auditor"))]
STORE = """
INSERT INTO artifact_blobs (content_hash, media_type, size_bytes, content, stored_by)
VALUES ($1, $2, $3, $4, $5) ON CONFLICT (content_hash) DO NOTHING
"""
SERVED_SAFELY = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"}


async def accepting_missions(
    runtime: GatewayRuntime, mission_ids: list[str]
) -> dict[str, queries.MissionTrace]:
    """Each mission's trace, looked up together; 404 for the first unknown mission, 409
    for the first that takes no more evidence."""
    standings = await queries.mission_standings(runtime.database, mission_ids)
    for mission_id in mission_ids:
        if mission_id not in standings:
            raise ProblemError(404, "mission_not_found", f"no mission {mission_id}")
        status, _ = standings[mission_id]
        if status not in WORKING_STATUSES:
            raise ProblemError(
                409,
                "mission_not_accepting_artifacts",
                f"mission is {status}; artifacts are recorded only while it is worked",
            )
    return {mission_id: standings[mission_id][1] for mission_id in mission_ids}


STORE_RESPONSES = problems(
    *WRITE_STATUSES,
    s404="No such mission",
    s409="The mission takes no more artifacts",
    s413="Larger than MAX_ARTIFACT_BYTES",
)


@router.post(
    "/internal/artifacts",
    status_code=status.HTTP_201_CREATED,
    response_model=ArtifactStored,
    responses=STORE_RESPONSES,
)
async def store_artifact(
    body: ArtifactCreate, request: Request, response: Response, caller: Colony
) -> ArtifactStored:
    """Store an artifact by its sha256 (idempotent) and, with a mission id, record it there."""
    (stored,) = await store(request.app.state.runtime, caller, [body])
    response.headers["Location"] = stored.link
    return stored


@router.post(
    "/internal/artifacts/batch",
    status_code=status.HTTP_201_CREATED,
    response_model=ArtifactsStored,
    responses=STORE_RESPONSES,
)
async def store_artifacts(body: ArtifactBatch, request: Request, caller: Colony) -> ArtifactsStored:
    """Store several artifacts as POST /internal/artifacts stores one, in one request: all
    are stored, or (a refusal names the one at fault) none is recorded."""
    return ArtifactsStored(stored=await store(request.app.state.runtime, caller, body.artifacts))


async def store(
    runtime: GatewayRuntime, caller: Caller, artifacts: list[ArtifactCreate]
) -> list[ArtifactStored]:
    """Check every artifact and its mission, store the blobs, then record them in their
    missions: one RecordArtifacts per mission, whose id derives from the content (a retry
    records none twice)."""
    contents = [artifact.content.encode() for artifact in artifacts]
    limit = runtime.settings.MAX_ARTIFACT_BYTES
    for index, content in enumerate(contents):
        if len(content) > limit:
            where = f"artifact {index}: " if len(contents) > 1 else ""
            raise ProblemError(
                413, "artifact_too_large", f"{where}{len(content)} bytes; the limit is {limit}"
            )
    missions = list(dict.fromkeys(a.mission_id for a in artifacts if a.mission_id))
    traces = await accepting_missions(runtime, missions) if missions else {}
    hashes = [hashlib.sha256(content).hexdigest() for content in contents]
    await runtime.database.executemany(
        STORE,
        [
            (content_hash, artifact.media_type, len(content), content, caller.label)
            for artifact, content, content_hash in zip(artifacts, contents, hashes, strict=True)
        ],
    )
    stored = [
        (artifact.mission_id, stored_artifact(artifact, content_hash, len(content)))
        for artifact, content, content_hash in zip(artifacts, contents, hashes, strict=True)
        if artifact.mission_id
    ]
    await asyncio.gather(
        *(
            record(runtime, caller, mission_id, [a for m, a in stored if m == mission_id], trace)
            for mission_id, trace in traces.items()
        )
    )
    return [
        ArtifactStored(content_hash=h, size_bytes=len(c), link=f"/artifacts/{h}")
        for c, h in zip(contents, hashes, strict=True)
    ]


def stored_artifact(artifact: ArtifactCreate, content_hash: str, size: int) -> StoredArtifact:
    return StoredArtifact(
        artifact_id=artifact.artifact_id or content_hash[:16],
        kind=artifact.kind,
        content_hash=content_hash,
        source=artifact.source,
        size_bytes=size,
    )


async def record(
    runtime: GatewayRuntime,
    caller: Caller,
    mission_id: str,
    artifacts: list[StoredArtifact],
    trace: queries.MissionTrace,
) -> None:
    """Send the RecordArtifacts command of the artifacts a request stored for one mission:
    its id derives from what they are, so a retried request records none twice. It goes
    on the mission's own trace: one request may carry several missions' artifacts (the
    colony shares requests, colony_consumers/store_queue.py)."""
    parts = [f"{a.artifact_id}:{a.content_hash}" for a in artifacts]
    command_id = derived_id("artifacts", mission_id, *parts)
    with mission_span("record artifacts", trace):
        body = RecordArtifacts(artifacts=artifacts)
        await runtime.commands.send(runtime.command(mission_id, body, caller, command_id))


@router.get(
    "/artifacts/{content_hash}",
    response_class=Response,
    responses={
        200: {
            "description": "The stored bytes, with the media type they were stored with",
            "content": {
                media: {"schema": {} if media == "application/json" else {"type": "string"}}
                for media in sorted(MEDIA_TYPES)
            }
            | {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        },
        **problems(401, 403, 404, 422, 503, s404="No artifact with this hash"),
    },
)
async def read_artifact(content_hash: ContentHash, request: Request, caller: Reader) -> Response:
    """An artifact's bytes, by content hash, with its media type."""
    runtime: GatewayRuntime = request.app.state.runtime
    row = await runtime.database.fetchrow(
        "SELECT media_type, content FROM artifact_blobs WHERE content_hash = $1", content_hash
    )
    if row is None:
        raise ProblemError(404, "artifact_not_found", f"no artifact {content_hash}")
    media = row["media_type"] if row["media_type"] in MEDIA_TYPES else "application/octet-stream"
    return Response(content=row["content"], media_type=media, headers=SERVED_SAFELY)
