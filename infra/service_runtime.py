"""Running a long-lived service until SIGTERM or SIGINT, then shutting down gracefully.

Signal handlers only set an event; the service finishes its in-flight batch, commits,
and stops its clients in `finally` blocks.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable

from loguru import logger


def run_service(name: str, main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run `main(stop)` in a fresh event loop; `stop` is set on SIGTERM/SIGINT."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        logger.info("{} starting", name)
        await main(stop)
        logger.info("{} stopped", name)

    asyncio.run(runner())
