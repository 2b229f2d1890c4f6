"""Artifacts stored at the same moment share requests (colony_consumers/store_queue.py),
each caller getting its own answer."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from colony_consumers.outages import OutageError
from colony_consumers.root_client import Artifact, RootRefusedError
from colony_consumers.store_queue import IN_FLIGHT, Bounds, StoreQueue

BOUNDS = Bounds(artifacts=4, bytes=1_000, refusals=(RootRefusedError,))


def hashed(artifacts: list[Artifact]) -> list[str]:
    return [hashlib.sha256(a.content.encode()).hexdigest() for a in artifacts]


class Root:
    """What `send` reaches: records each request; refuses artifacts of `refused`
    missions (the whole request, as the root's batch endpoint does) and fails every
    request while `down`."""

    def __init__(self, refused: frozenset[str] = frozenset()) -> None:
        self.requests: list[list[Artifact]] = []
        self.refused = refused
        self.down = False
        self.answer = asyncio.Event()
        self.answer.set()

    async def send(self, artifacts: list[Artifact]) -> list[str]:
        self.requests.append(artifacts)
        await self.answer.wait()
        if self.down:
            raise OutageError("root answered 503")
        if any(a.mission_id in self.refused for a in artifacts):
            raise RootRefusedError("mission takes no more artifacts")
        return hashed(artifacts)


def group(mission: str, *contents: str) -> list[Artifact]:
    return [Artifact(content, mission_id=mission) for content in contents]


async def test_groups_stored_at_once_share_requests_within_the_bounds_in_order() -> None:
    root = Root()
    queue = StoreQueue(root.send, BOUNDS)
    groups = [group(f"m{i}", f"a{i}", f"b{i}") for i in range(6)]
    answers = await asyncio.gather(*(queue.store(g) for g in groups))
    assert answers == [hashed(g) for g in groups]
    assert [len(r) for r in root.requests] == [4, 4, 4]
    assert [a for r in root.requests for a in r] == [a for g in groups for a in g]


async def test_a_lone_group_goes_at_once_and_a_busy_queue_waits_for_a_free_request() -> None:
    root = Root()
    root.answer.clear()  # the root holds every answer until told
    queue = StoreQueue(root.send, BOUNDS)
    first = [asyncio.create_task(queue.store(group(f"m{i}", f"x{i}"))) for i in range(IN_FLIGHT)]
    await asyncio.sleep(0.01)
    assert len(root.requests) == 1, "the first request took every group queued before it"
    later = [asyncio.create_task(queue.store(group(f"n{i}", f"y{i}"))) for i in range(3)]
    await asyncio.sleep(0.01)
    assert [len(r) for r in root.requests] == [IN_FLIGHT, 3], "a sender was free: sent at once"
    root.answer.set()
    await asyncio.gather(*first, *later)


async def test_a_refused_shared_request_is_sent_again_group_by_group() -> None:
    """One mission no longer taking evidence does not fail the others it shared with."""
    root = Root(refused=frozenset({"closed"}))
    queue = StoreQueue(root.send, BOUNDS)
    fine, closed = group("open", "kept"), group("closed", "late")
    answers = await asyncio.gather(queue.store(fine), queue.store(closed), return_exceptions=True)
    assert answers[0] == hashed(fine)
    assert isinstance(answers[1], RootRefusedError)
    assert root.requests == [fine + closed, fine, closed]


async def test_an_outage_is_every_callers_of_the_request() -> None:
    root = Root()
    root.down = True
    queue = StoreQueue(root.send, BOUNDS)
    answers = await asyncio.gather(
        *(queue.store(group(f"m{i}", f"c{i}")) for i in range(3)), return_exceptions=True
    )
    assert all(isinstance(answer, OutageError) for answer in answers)
    assert len(root.requests) == 1, "not sent again: each caller waits the outage out itself"


async def test_a_caller_that_stopped_waiting_is_not_sent() -> None:
    root = Root()
    root.answer.clear()
    queue = StoreQueue(root.send, BOUNDS)
    holding = []
    for i in range(IN_FLIGHT):  # one at a time: each takes a request of its own
        holding.append(asyncio.create_task(queue.store(group(f"m{i}", f"h{i}"))))
        await asyncio.sleep(0.01)
    assert len(root.requests) == IN_FLIGHT
    gone = asyncio.create_task(queue.store(group("gone", "never sent")))
    await asyncio.sleep(0.01)
    gone.cancel()
    root.answer.set()
    await asyncio.gather(*holding)
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert all(a.mission_id != "gone" for r in root.requests for a in r)
