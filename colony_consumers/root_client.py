"""The colony's bridge to the root: artifacts are persisted through POST /internal/artifacts
with ROOT_API_KEY (service role), content-addressed; the root records them in the mission."""

from __future__ import annotations

import httpx


class RootUnavailableError(RuntimeError):
    """The root did not store the artifact; the task fails legibly and may be retried."""


class RootClient:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def store(
        self,
        content: str,
        *,
        mission_id: str | None = None,
        artifact_id: str | None = None,
        kind: str = "document",
        source: str = "",
        media_type: str = "text/plain",
    ) -> str:
        """Store `content`; its sha256 content hash."""
        body = {
            "content": content,
            "mission_id": mission_id,
            "artifact_id": artifact_id,
            "kind": kind,
            "source": source,
            "media_type": media_type,
        }
        try:
            response = await self.client.post("/internal/artifacts", json=body)
        except httpx.HTTPError as error:
            raise RootUnavailableError(f"root unreachable: {error}") from error
        if response.status_code != 201:
            raise RootUnavailableError(
                f"root answered {response.status_code}: {response.text[:200]}"
            )
        return str(response.json()["content_hash"])
