"""The colony's bridge to the root: artifacts are persisted through POST /internal/artifacts
with ROOT_API_KEY (a colony-role key), content-addressed; the root records them in the
mission. The colony checks at start, and in its /readyz, that the root accepts that key.

The root unreachable, answering 5xx, or refusing the key is an outage (waited out: the
reaction is retried, no task attempt is spent); any other refusal (the mission no longer
takes evidence, an invalid artifact) is the task's failure."""

from __future__ import annotations

import asyncio
import contextlib

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


class RootClient:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.recent: LRUCache[str, str] = LRUCache(maxsize=RECENT_BYTES, getsizeof=len)

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
        except httpx.TransportError as error:
            raise OutageError(f"root unreachable ({type(error).__name__})") from error
        checked(response, 201, "storing an artifact")
        content_hash = str(response.json()["content_hash"])
        if len(content) <= RECENT_BYTES // 64:
            self.recent[content_hash] = content
        return content_hash

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
