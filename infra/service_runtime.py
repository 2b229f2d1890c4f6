"""Running a long-lived service until SIGTERM or SIGINT, then shutting down gracefully.

Signal handlers only set an event; the service finishes its in-flight batch, commits,
and stops its clients in `finally` blocks. Services run on uvloop: their work is mostly
the event loop's (sockets to the broker and PostgreSQL), which uvloop does in C.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable

import uvloop
from loguru import logger


def run_service(name: str, main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run `main(stop)` in a fresh (uvloop) event loop; `stop` is set on SIGTERM/SIGINT."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        logger.info("{} starting", name)
        await main(stop)
        logger.info("{} stopped", name)

    uvloop.run(runner())
