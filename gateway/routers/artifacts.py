"""Artifacts: the colony persists them through the root; anyone with a role reads them."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status

from gateway.auth import Caller, require
from gateway.command_outcome import derived_id, make_command, trace_id_from
from gateway.mission_models import ArtifactCreate, ArtifactStored
from gateway.problems import ProblemError
from gateway.runtime import GatewayRuntime
from ledger.commands import RecordArtifact

router = APIRouter(tags=["artifacts"])
Service = Annotated[Caller, Depends(require("service"))]
Reader = Annotated[Caller, Depends(require("service", "operator", "auditor"))]
STORE = """
INSERT INTO artifact_blobs (content_hash, media_type, size_bytes, content, stored_by)
VALUES ($1, $2, $3, $4, $5) ON CONFLICT (content_hash) DO NOTHING
"""


def refuse_oversized(request: Request) -> None:
    """413 before reading a body that announces itself too large."""
    limit = request.app.state.runtime.settings.MAX_ARTIFACT_BYTES
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit * 2 + 4_096:
        raise ProblemError(413, "artifact_too_large", f"artifacts are limited to {limit} bytes")


@router.post(
    "/internal/artifacts",
    status_code=status.HTTP_201_CREATED,
    response_model=ArtifactStored,
    dependencies=[Depends(refuse_oversized)],
    responses={413: {"description": "Larger than MAX_ARTIFACT_BYTES"}},
)
async def store_artifact(
    body: ArtifactCreate, request: Request, response: Response, caller: Service
) -> ArtifactStored:
    """Store an artifact by its sha256 (idempotent) and, with a mission id, record it there."""
    runtime: GatewayRuntime = request.app.state.runtime
    content = body.content.encode()
    limit = runtime.settings.MAX_ARTIFACT_BYTES
    if len(content) > limit:
        raise ProblemError(413, "artifact_too_large", f"{len(content)} bytes; the limit is {limit}")
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
        trace = trace_id_from(request.headers.get("traceparent"))
        await runtime.commands.send(
            make_command(body.mission_id, record, caller, command_id, trace)
        )
    response.headers["Location"] = f"/artifacts/{content_hash}"
    return ArtifactStored(
        content_hash=content_hash, size_bytes=len(content), link=f"/artifacts/{content_hash}"
    )


@router.get(
    "/artifacts/{content_hash}",
    responses={200: {"content": {"application/octet-stream": {}}}, 404: {}},
)
async def read_artifact(content_hash: str, request: Request, caller: Reader) -> Response:
    """An artifact's bytes, by content hash, with its media type."""
    runtime: GatewayRuntime = request.app.state.runtime
    row = await runtime.database.fetchrow(
        "SELECT media_type, content FROM artifact_blobs WHERE content_hash = $1", content_hash
    )
    if row is None:
        raise ProblemError(404, "artifact_not_found", f"no artifact {content_hash}")
    return Response(content=row["content"], media_type=row["media_type"])
