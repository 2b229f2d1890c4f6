"""Artifacts that missions store at the same moment share one request to the root.

A mission stores three groups of artifacts (its research sources, its draft, its
reviewer packet), each a request the root parses, authenticates, routes and answers, and
the colony's client sends and reads. At 100 missions in flight, groups arrive while a
request is out: they wait for it and go together in the next one, within the bounds of a
batch (colony_consumers/root_client.py). A lone group goes at once, so at low load nothing
waits; under load a request carries several missions' artifacts.

A shared request the root refuses (one mission's view lagging behind the log, one that no
longer takes evidence) is sent again one group at a time, so each mission gets its own
answer; an outage is everyone's, each caller waits it out as before.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from colony_consumers.root_client import Artifact

Send = Callable[[list["Artifact"]], Awaitable[list[str]]]
"""One request storing artifacts: their content hashes, in order."""
Queued = tuple[list["Artifact"], asyncio.Future[list[str]]]


@dataclass(frozen=True)
class Bounds:
    """What one request may carry, and the errors that are a refusal of its content (the
    rest are outages)."""

    artifacts: int
    bytes: int
    refusals: tuple[type[Exception], ...]


IN_FLIGHT = 4
"""Requests out at once: a lone group never waits, and a slow answer (or a refused
shared request sent again group by group) holds up only what it carries."""


class StoreQueue:
    """Groups of artifacts sent through `send`, at most IN_FLIGHT requests at a time, the
    groups queued meanwhile together."""

    def __init__(self, send: Send, bounds: Bounds) -> None:
        self.send = send
        self.bounds = bounds
        self._queued: deque[Queued] = deque()
        self._sending = 0
        """Senders running: counted down by each before it ends, in the same step as its
        last look at the queue, so a group queued after that look starts a new one."""
        self._senders: set[asyncio.Task[None]] = set()  # held, or they could be collected

    async def store(self, group: list[Artifact]) -> list[str]:
        """`group` stored (alone or beside other groups); its content hashes, in order."""
        stored: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        self._queued.append((group, stored))
        if self._sending < IN_FLIGHT:
            self._sending += 1
            sender = asyncio.create_task(self._send_queued())
            self._senders.add(sender)
            sender.add_done_callback(self._senders.discard)
        return await stored

    async def _send_queued(self) -> None:
        try:
            while self._queued:
                await self._send_together(self._take())
        finally:
            self._sending -= 1
            if not self._sending:  # cancelled, the last sender: no one will send these
                for _, stored in self._queued:
                    stored.cancel()

    def _take(self) -> list[Queued]:
        """The oldest groups that fit one request (at least one), less those whose caller
        stopped waiting."""
        taken: list[Queued] = []
        count = size = 0
        while self._queued:
            group, stored = self._queued[0]
            bytes_ = sum(len(artifact.content) for artifact in group)
            fits = count + len(group) <= self.bounds.artifacts
            if taken and not (fits and size + bytes_ <= self.bounds.bytes):
                break
            self._queued.popleft()
            if not stored.done():
                taken.append((group, stored))
                count, size = count + len(group), size + bytes_
        return taken

    async def _send_together(self, taken: list[Queued]) -> None:
        if not taken:
            return
        try:
            hashes = await self.send([artifact for group, _ in taken for artifact in group])
        except self.bounds.refusals as refused:
            if len(taken) == 1:
                _settle(taken[0][1], error=refused)
                return
            for one in taken:
                await self._send_together([one])
            return
        except Exception as error:  # an outage: everyone's
            for _, stored in taken:
                _settle(stored, error=error)
            return
        except BaseException:  # the colony stopping: no answer
            for _, stored in taken:
                stored.cancel()
            raise
        start = 0
        for group, stored in taken:
            _settle(stored, hashes[start : start + len(group)])
            start += len(group)


def _settle(
    stored: asyncio.Future[list[str]],
    hashes: list[str] | None = None,
    error: Exception | None = None,
) -> None:
    """Answer a caller still waiting (one whose task was cancelled is not)."""
    if stored.done():
        return
    if error is not None:
        stored.set_exception(error)
    else:
        stored.set_result(hashes or [])
