"""What the ledger made of the commands the root's requests wait on, found together.

A request that waits for its command (gateway/command_outcome.py) costs no polling of its
own: `Outcomes` LISTENs for the projector's commit notification (projections/archive.py),
whose payload names the batch's commands and what the ledger made of each, and answers
the waiting ones from it. A notification without that note (too long, or from an older
projector) has every waiting command looked up in one query instead (an archived event
caused by it: applied, or a CommandRejected). A tick queries too in case a notification
is missed (the listening connection lost with the database, say): every TICK_S while
listening, every UNHEARD_TICK_S not.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import asyncpg
import orjson
from loguru import logger

from gateway.dependencies import Database
from gateway.problems import DependencyDownError, ProblemError
from infra.database import DATABASE_OUTAGES
from projections.archive import PROJECTED_CHANNEL
from projections.queries import outcomes_of

TICK_S = 0.25
UNHEARD_TICK_S = 0.05
RELISTEN_S = 1.0


@dataclass(frozen=True)
class Outcome:
    """What the ledger made of a command within the wait: done, rejected, or unknown yet."""

    done: bool
    rejection: str | None = None


class Outcomes:
    """The commands this root's requests are waiting on, resolved together."""

    def __init__(self, database: Database, tick_s: float = TICK_S) -> None:
        self.database = database
        self.tick_s = tick_s
        self.waiting: dict[str, list[asyncio.Future[str | None]]] = {}
        self.wake = asyncio.Event()
        self.listening = False

    async def wait(self, command_id: str, timeout_s: float) -> Outcome | None:
        """What the ledger made of `command_id` (applied or rejected), or None if the
        archive holds nothing it caused within `timeout_s`."""
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        waiters = self.waiting.setdefault(command_id, [])
        waiters.append(future)
        try:
            rejection = await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            return None
        finally:
            self._forget(command_id, future)
        return Outcome(done=rejection is None, rejection=rejection)

    def _forget(self, command_id: str, future: asyncio.Future[str | None]) -> None:
        waiters = self.waiting.get(command_id, [])
        if future in waiters:
            waiters.remove(future)
        if not waiters:
            self.waiting.pop(command_id, None)

    async def run(self) -> None:
        """Look up the waiting commands after each notification (or tick), for good."""
        listener = asyncio.create_task(self.listen())
        try:
            while True:
                tick = self.tick_s if self.listening else UNHEARD_TICK_S
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), tick)
                self.wake.clear()
                if self.waiting:
                    await self.check()
        finally:
            listener.cancel()

    async def check(self) -> None:
        try:
            found = await outcomes_of(self.database, list(self.waiting))
        except (DependencyDownError, ProblemError):
            return  # the requests time out and look once more themselves
        self.settle(found)

    def settle(self, found: dict[str, str | None]) -> None:
        """Answer the waiters of each command in `found` (its rejection, or None)."""
        for command_id, rejection in found.items():
            for future in self.waiting.pop(command_id, []):
                if not future.done():
                    future.set_result(rejection)

    def heard(self, _connection: object, _pid: int, _channel: str, payload: object) -> None:
        """A commit notification (asyncpg's listener): the waiters it names settled from
        its note, or, without one, a wake-up for the query."""
        note = read_note(payload)
        if note is None:
            self.wake.set()
        else:
            self.settle({command: note[command] for command in note.keys() & self.waiting})

    async def listen(self) -> None:
        """Keep one connection LISTENing to the projector's commits; reconnect after the
        database comes back (meanwhile the tick is short)."""
        while True:
            try:
                connection = await asyncpg.connect(self.database.url, timeout=3)
            except DATABASE_OUTAGES:
                await asyncio.sleep(RELISTEN_S)
                continue
            try:
                await self._listen_on(connection)
            except DATABASE_OUTAGES as error:
                logger.info("not listening to projections: {}", type(error).__name__)
            finally:
                self.listening = False
                with contextlib.suppress(*DATABASE_OUTAGES):
                    await asyncio.wait_for(connection.close(), 3)
            await asyncio.sleep(RELISTEN_S)

    async def _listen_on(self, connection: asyncpg.Connection) -> None:
        """Until `connection` is lost."""
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _: lost.set())
        await connection.add_listener(PROJECTED_CHANNEL, self.heard)
        self.listening = True
        self.wake.set()  # what was projected while nobody listened
        await lost.wait()


def read_note(payload: object) -> dict[str, str | None] | None:
    """The outcomes a notification's payload holds (`projections.archive.outcomes_note`),
    or None when it holds none: empty, or not such a note."""
    if not isinstance(payload, str) or not payload:
        return None
    try:
        note = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(note, dict) or not all(
        isinstance(value, str | None) for value in note.values()
    ):
        return None
    return note
