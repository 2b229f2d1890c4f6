"""Artifacts: the colony persists them through the root; every role that reads missions
reads them.

Only the colony role stores artifacts (a `service` key opens missions, it cannot add
evidence to them), only into missions that are being worked (planning, running, in review
or awaiting approval), and only with a media type from an allow-list; they are served
back with that type, `nosniff` and a sandboxing CSP, so stored content never runs.
"""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status

from gateway.auth import require
from gateway.command_outcome import derived_id
from gateway.keys import Caller
from gateway.mission_models import MEDIA_TYPES, ArtifactCreate, ArtifactStored, ContentHash
from gateway.problems import ProblemError, problems
from gateway.runtime import GatewayRuntime
from ledger.commands import RecordArtifact
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


async def accepting_mission(runtime: GatewayRuntime, mission_id: str) -> None:
    """404 for an unknown mission, 409 for one that takes no more evidence."""
    row = await queries.mission(runtime.database, mission_id)
    if row is None:
        raise ProblemError(404, "mission_not_found", f"no mission {mission_id}")
    if row["status"] not in WORKING_STATUSES:
        raise ProblemError(
            409,
            "mission_not_accepting_artifacts",
            f"mission is {row['status']}; artifacts are recorded only while it is worked",
        )


@router.post(
    "/internal/artifacts",
    status_code=status.HTTP_201_CREATED,
    response_model=ArtifactStored,
    responses=problems(
        400,
        401,
        403,
        404,
        409,
        413,
        422,
        503,
        s404="No such mission",
        s409="The mission takes no more artifacts",
        s413="Larger than MAX_ARTIFACT_BYTES",
    ),
)
async def store_artifact(
    body: ArtifactCreate, request: Request, response: Response, caller: Colony
) -> ArtifactStored:
    """Store an artifact by its sha256 (idempotent) and, with a mission id, record it there."""
    runtime: GatewayRuntime = request.app.state.runtime
    content = body.content.encode()
    limit = runtime.settings.MAX_ARTIFACT_BYTES
    if len(content) > limit:
        raise ProblemError(413, "artifact_too_large", f"{len(content)} bytes; the limit is {limit}")
    if body.mission_id:
        await accepting_mission(runtime, body.mission_id)
    content_hash = hashlib.sha256(content).hexdigest()
    await runtime.database.execute(
        STORE, content_hash, body.media_type, len(content), content, caller.label
    )
    if body.mission_id:
        record = RecordArtifact(
            artifact_id=body.artifact_id or content_hash[:16],
            kind=body.kind,
            content_hash=content_hash,
            source=body.source,
            size_bytes=len(content),
        )
        command_id = derived_id("artifact", body.mission_id, record.artifact_id, content_hash)
        await runtime.commands.send(runtime.command(body.mission_id, record, caller, command_id))
    response.headers["Location"] = f"/artifacts/{content_hash}"
    return ArtifactStored(
        content_hash=content_hash, size_bytes=len(content), link=f"/artifacts/{content_hash}"
    )


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
