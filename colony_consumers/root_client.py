"""The colony's bridge to the root: artifacts are persisted through POST /internal/artifacts
with ROOT_API_KEY (a colony-role key), content-addressed; the root records them in the
mission. The colony checks at start, and in its /readyz, that the root accepts that key.

The root unreachable, answering 5xx, or refusing the key is an outage (waited out: the
reaction is retried, no task attempt is spent); any other refusal (the mission no longer
takes evidence, an invalid artifact) is the task's failure."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import asdict, dataclass
from typing import Any

import httpx
from cachetools import LRUCache
from loguru import logger

from colony_consumers.outages import OutageError
from infra.readiness import NotReady


class RootRefusedError(RuntimeError):
    """The root refused the request for what it is (4xx other than a key problem)."""


LAGGING = frozenset(
    {
        "urn:velocity:problem:mission_not_found",
        "urn:velocity:problem:mission_not_accepting_artifacts",
    }
)
"""Refusals from the root's projection of a mission the colony knows is being worked: the
projection is behind the log (e.g. catching up after a database restart). Waited out."""


def checked(response: httpx.Response, expected: int, what: str) -> httpx.Response:
    """`response` if it is `expected`; else an outage or a refusal, saying which."""
    if response.status_code == expected:
        return response
    summary = f"{what}: root answered {response.status_code}"
    if response.status_code >= 500 or response.status_code in (401, 403, 429):
        raise OutageError(summary)
    if _problem_type(response) in LAGGING:
        raise OutageError(f"{summary}: its view of the mission lags the log")
    raise RootRefusedError(f"{summary}: {response.text[:200]}")


def _problem_type(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return str(body.get("type")) if isinstance(body, dict) else None


RECENT_BYTES = 32 * 1024 * 1024
"""What the colony keeps of the artifacts it stored lately: a mission's draft reads the
sources its research stored a moment before, without asking the root for them again."""
BATCH_BYTES = 256 * 1024
BATCH_ARTIFACTS = 20
"""A research task's sources go to the root in one request up to these bounds (the root's
body limit follows its MAX_ARTIFACT_BYTES, at least as large by default; a batch it still
finds too large is sent again one artifact at a time)."""


@dataclass(frozen=True)
class Artifact:
    """What POST /internal/artifacts takes."""

    content: str
    mission_id: str | None = None
    artifact_id: str | None = None
    kind: str = "document"
    source: str = ""
    media_type: str = "text/plain"


def batches(artifacts: list[Artifact]) -> list[list[Artifact]]:
    """`artifacts` in order, grouped within BATCH_BYTES and BATCH_ARTIFACTS."""
    groups: list[list[Artifact]] = []
    size = 0
    for artifact in artifacts:
        size += len(artifact.content)
        if not groups or len(groups[-1]) == BATCH_ARTIFACTS or size > BATCH_BYTES:
            groups.append([])
            size = len(artifact.content)
        groups[-1].append(artifact)
    return groups


class RootClient:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.recent: LRUCache[str, str] = LRUCache(maxsize=RECENT_BYTES, getsizeof=len)

    async def store(self, artifact: Artifact) -> str:
        """Store `artifact`; its sha256 content hash."""
        (content_hash,) = await self.store_all([artifact])
        return content_hash

    async def store_all(self, artifacts: list[Artifact]) -> list[str]:
        """Store `artifacts` in as few requests as fit; their content hashes, in order."""
        hashes: list[str] = []
        for group in batches(artifacts):
            hashes += await self._store_group(group)
        for artifact, content_hash in zip(artifacts, hashes, strict=True):
            if len(artifact.content) <= RECENT_BYTES // 64:
                self.recent[content_hash] = artifact.content
        return hashes

    async def _store_group(self, group: list[Artifact]) -> list[str]:
        if len(group) > 1:
            body = {"artifacts": [asdict(artifact) for artifact in group]}
            response = await self._post("/internal/artifacts/batch", body)
            if response.status_code != 413:
                stored = checked(response, 201, "storing artifacts").json()["stored"]
                return [str(item["content_hash"]) for item in stored]
        hashes = []
        for artifact in group:
            response = await self._post("/internal/artifacts", asdict(artifact))
            hashes.append(str(checked(response, 201, "storing an artifact").json()["content_hash"]))
        return hashes

    async def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        try:
            return await self.client.post(path, json=body)
        except httpx.TransportError as error:
            raise OutageError(f"root unreachable ({type(error).__name__})") from error

    async def content(self, content_hash: str) -> str:
        """A stored artifact's text (from what this colony stored lately, else the root)."""
        kept = self.recent.get(content_hash)
        if kept is not None:
            return kept
        try:
            response = await self.client.get(f"/artifacts/{content_hash}")
        except httpx.TransportError as error:
            raise OutageError(f"root unreachable ({type(error).__name__})") from error
        return checked(response, 200, f"reading artifact {content_hash[:12]}").text


class RootUnreachableError(NotReady):
    """The root does not answer (yet): at a stack's start it is still starting."""


UNREACHABLE_ALARM_S = 30.0
"""How long the root may not answer before waiting for it is an ERROR, not news."""


async def check_root_key(root: RootClient) -> None:
    """Raise NotReady unless the root accepts ROOT_API_KEY as a colony key (colony→root)."""
    try:
        response = await root.client.get("/auth/whoami")
    except httpx.HTTPError as error:
        raise RootUnreachableError(
            f"root unreachable at ROOT_API_BASE_URL ({type(error).__name__})"
        ) from error
    if response.status_code in (401, 403):
        raise NotReady(
            "colony→root: the root refused ROOT_API_KEY (it is not among the root's"
            " VELOCITY_API_KEYS)"
        )
    if response.status_code != 200:
        raise NotReady(f"colony→root: /auth/whoami answered {response.status_code}")
    role = response.json().get("role")
    if role != "colony":
        raise NotReady(
            f"colony→root: ROOT_API_KEY is a {role} key; the root takes artifacts only from a"
            " colony key (colony:<name>:<key> in VELOCITY_API_KEYS)"
        )


async def wait_for_root_key(root: RootClient, stop: asyncio.Event, every_s: float = 2.0) -> bool:
    """Hold the reactors until the root accepts our key, so a misconfigured key fails no
    mission (they wait in the log); False if asked to stop first. Each new refusal is
    logged once, with what to set."""
    last: str | None = None
    started = asyncio.get_running_loop().time()
    while not stop.is_set():
        try:
            await check_root_key(root)
            logger.info("the root accepts ROOT_API_KEY as a colony key; reactors start")
            return True
        except NotReady as refused:
            waited = asyncio.get_running_loop().time() - started
            starting = isinstance(refused, RootUnreachableError) and waited < UNREACHABLE_ALARM_S
            said = f"{refused}{'' if starting else ' (still)'}"
            if said != last:
                logger.log("INFO" if starting else "ERROR", "reactors wait: {}", refused)
                last = said
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
    return False
