"""The colony's bridge to the root: artifacts are persisted through POST /internal/artifacts
with ROOT_API_KEY (a colony-role key), content-addressed; the root records them in the
mission. The colony checks at start, and in its /readyz, that the root accepts that key.

The root unreachable, answering 5xx, or refusing the key is an outage (waited out: the
reaction is retried, no task attempt is spent); any other refusal (the mission no longer
takes evidence, an invalid artifact) is the task's failure.

The client is aiohttp, not httpx: the colony makes a few requests to the root per mission,
and httpx spent ~1.7 ms of CPU on each where aiohttp spends ~0.2 ms (measured on this
machine against a bare HTTP server); the colony was the stack's busiest process. Its
OpenTelemetry instrumentation carries the mission's trace to the root as httpx's did."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from cachetools import LRUCache
from loguru import logger
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from colony_consumers.outages import OutageError
from colony_consumers.store_queue import Bounds, StoreQueue
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
projection is behind the log. Usually by a few milliseconds (a new mission's first task
starts in the same reaction as its planning, often before the projector has the plan),
so asked again at once, briefly (LAG_WAIT_S); a longer lag (catching up after a database
restart) is an outage, waited out like one."""
LAG_WAIT_S = 2.0


class LaggingError(OutageError):
    """The root's view of the mission is behind the log."""


@dataclass(frozen=True)
class Answer:
    """A response of the root, read whole."""

    status: int
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


def checked(response: Answer, expected: int, what: str) -> Answer:
    """`response` if it is `expected`; else an outage or a refusal, saying which."""
    if response.status == expected:
        return response
    summary = f"{what}: root answered {response.status}"
    if response.status >= 500 or response.status in (401, 403, 429):
        raise OutageError(summary)
    if _problem_type(response) in LAGGING:
        raise LaggingError(f"{summary}: its view of the mission lags the log")
    raise RootRefusedError(f"{summary}: {response.text[:200]}")


def _problem_type(response: Answer) -> str | None:
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
"""A request to the root carries at most this much: a research task's sources, and the
artifacts other missions store at the same moment (colony_consumers/store_queue.py). The
root's body limit follows its MAX_ARTIFACT_BYTES, at least as large by default; a batch it
still finds too large is sent again one artifact at a time."""


@dataclass(frozen=True)
class Artifact:
    """What POST /internal/artifacts takes."""

    content: str
    mission_id: str | None = None
    artifact_id: str | None = None
    kind: str = "document"
    source: str = ""
    media_type: str = "text/plain"

    def body(self) -> dict[str, Any]:
        """Its JSON body: its fields as they are (text or None; `asdict`'s deep copy of each
        was ~3 % of the colony's CPU)."""
        return dict(vars(self))


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


class RootUnreachableError(NotReady):
    """The root does not answer (yet): at a stack's start it is still starting."""


class RootClient:
    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        """`base_url`: ROOT_API_BASE_URL (a path prefix, if any, is kept)."""
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.recent: LRUCache[str, str] = LRUCache(maxsize=RECENT_BYTES, getsizeof=len)
        bounds = Bounds(BATCH_ARTIFACTS, BATCH_BYTES, (RootRefusedError, LaggingError))
        self.queue = StoreQueue(self._store_group, bounds)

    async def store(self, artifact: Artifact) -> str:
        """Store `artifact`; its sha256 content hash."""
        (content_hash,) = await self.store_all([artifact])
        return content_hash

    async def store_all(self, artifacts: list[Artifact]) -> list[str]:
        """Store `artifacts` in as few requests as fit; their content hashes, in order."""
        hashes: list[str] = []
        for group in batches(artifacts):
            hashes += await self._stored(group)
        for artifact, content_hash in zip(artifacts, hashes, strict=True):
            if len(artifact.content) <= RECENT_BYTES // 64:
                self.recent[content_hash] = artifact.content
        return hashes

    async def _stored(self, group: list[Artifact]) -> list[str]:
        """`group`'s hashes once stored, the root's lag waited out (LAG_WAIT_S). The retry
        machinery is built only once the root lags: a tenacity loop costs ~44 µs, and it
        was built for every store (three a mission)."""
        try:
            return await self.queue.store(group)
        except LaggingError:
            retrying = AsyncRetrying(
                retry=retry_if_exception_type(LaggingError),
                wait=wait_exponential(multiplier=0.01, max=0.2),
                stop=stop_after_delay(LAG_WAIT_S),
                reraise=True,
            )
        return await retrying(self.queue.store, group)

    async def _store_group(self, group: list[Artifact]) -> list[str]:
        if len(group) > 1:
            body = {"artifacts": [artifact.body() for artifact in group]}
            response = await self._request("POST", "/internal/artifacts/batch", body)
            if response.status != 413:
                stored = checked(response, 201, "storing artifacts").json()["stored"]
                return [str(item["content_hash"]) for item in stored]
        hashes = []
        for artifact in group:
            response = await self._request("POST", "/internal/artifacts", artifact.body())
            hashes.append(str(checked(response, 201, "storing an artifact").json()["content_hash"]))
        return hashes

    async def _request(self, method: str, path: str, body: Any = None) -> Answer:
        """The root's answer; an OutageError when there is none."""
        try:
            return await self.answer(method, path, body)
        except RootUnreachableError as error:
            raise OutageError(str(error)) from error

    async def answer(self, method: str, path: str, body: Any = None) -> Answer:
        """The root's answer; RootUnreachableError when there is none."""
        try:
            async with self.session.request(
                method, f"{self.base_url}{path}", json=body
            ) as response:
                return Answer(response.status, await response.read())
        except (aiohttp.ClientError, TimeoutError) as error:
            raise RootUnreachableError(
                f"root unreachable at ROOT_API_BASE_URL ({type(error).__name__})"
            ) from error

    async def content(self, content_hash: str) -> str:
        """A stored artifact's text (from what this colony stored lately, else the root)."""
        kept = self.recent.get(content_hash)
        if kept is not None:
            return kept
        response = await self._request("GET", f"/artifacts/{content_hash}")
        return checked(response, 200, f"reading artifact {content_hash[:12]}").text


UNREACHABLE_ALARM_S = 30.0
"""How long the root may not answer before waiting for it is an ERROR, not news."""


async def check_root_key(root: RootClient) -> None:
    """Raise NotReady unless the root accepts ROOT_API_KEY as a colony key (colony→root)."""
    response = await root.answer("GET", "/auth/whoami")
    if response.status in (401, 403):
        raise NotReady(
            "colony→root: the root refused ROOT_API_KEY (it is not among the root's"
            " VELOCITY_API_KEYS)"
        )
    if response.status != 200:
        raise NotReady(f"colony→root: /auth/whoami answered {response.status}")
    try:
        role = response.json().get("role")
    except (ValueError, AttributeError):
        role = "unknown"
    if role != "colony":
        raise NotReady(
            f"colony→root: ROOT_API_KEY is a {role} key; the root takes artifacts only from a"
            " colony key (colony:<name>:<key> in VELOCITY_API_KEYS)"
        )


def key_check_delays(every_s: float = 2.0, first_s: float = 0.25) -> Iterator[float]:
    """Seconds between checks of the root: soon at first, doubling up to `every_s`. The
    stack starts the root beside the colony; checking every 2 s from the start held the
    colony's group join (5 s on the embedded broker) up to 2 s after the root answered,
    at every start of the stack."""
    delay = first_s
    while True:
        yield delay
        delay = min(delay * 2, every_s)


async def wait_for_root_key(root: RootClient, stop: asyncio.Event) -> bool:
    """Hold the reactors until the root accepts our key, so a misconfigured key fails no
    mission (they wait in the log); False if asked to stop first. Each new refusal is
    logged once, with what to set."""
    last: str | None = None
    started = asyncio.get_running_loop().time()
    delays = key_check_delays()
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
            await asyncio.wait_for(stop.wait(), next(delays))
    return False
