"""Running a long-lived service until SIGTERM or SIGINT, then shutting down gracefully.

Signal handlers only set an event; the service finishes its in-flight batch, commits,
and stops its clients in `finally` blocks. Services run on uvloop: their work is mostly
the event loop's (sockets to the broker and PostgreSQL), which uvloop does in C.
"""

from __future__ import annotations

import asyncio
import gc
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import uvloop
from loguru import logger

from infra.freed_memory import release_freed_memory


def run_service(
    name: str, main: Callable[[asyncio.Event], Awaitable[None]], release_memory: bool = False
) -> None:
    """Run `main(stop)` in a fresh (uvloop) event loop; `stop` is set on SIGTERM/SIGINT.
    `release_memory`: hand freed memory back to the OS as it runs (infra/freed_memory.py)."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        logger.info("{} starting", name)
        await main(stop)
        logger.info("{} stopped", name)

    run_loop(runner(), release_memory)


YOUNG_GENERATION_THRESHOLD = 10_000
"""Allocations between two collections of the youngest generation (Python's default: 700)."""


def tune_garbage_collector() -> None:
    """Set the garbage collector for a server: what was loaded at start (modules, schemas,
    settings) is frozen out of every collection, and young objects are collected every
    YOUNG_GENERATION_THRESHOLD allocations.

    Every record a service handles allocates dozens of short-lived objects (decoded Avro
    dicts, pydantic models, statements), few of them in reference cycles. At the defaults
    the collector ran every few records and now and then walked the whole heap (FastAPI's
    and OpenTelemetry's objects, every cached mission): with 100 missions in flight it took
    13-14 % of the colony's and the root's CPU, ~6 % of the stack's; ~0.5 % now (measured
    with gc.callbacks in each process over 600 missions). Cycles are still collected."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, *gc.get_threshold()[1:])


def run_loop(main: Coroutine[Any, Any, None], release_memory: bool = False) -> None:
    """Run a service's `main` on uvloop, with the garbage collector tuned for a server and,
    if `release_memory`, freed memory handed back to the operating system as it runs.

    Only the decider and the colony release: their memory must stay flat however long the
    log, and it did not without (docs/architecture.md, "Eighth session"). Every release
    costs page faults when the memory is touched again: with all four services releasing,
    `POST /missions` p99 at 200 requests/s was 64/98/91 ms against 56/80/76 ms without
    (A/B, three pairs), so the root, whose latency is its goal, and the projector do not
    (then 64.7/51.1/52.3 ms against 47.7/54.2/51.2: within this machine's noise)."""
    tune_garbage_collector()
    uvloop.run(releasing_freed_memory(main) if release_memory else main)


async def releasing_freed_memory(main: Coroutine[Any, Any, None]) -> None:
    """`main`, with `release_freed_memory` beside it until `main` returns."""
    releasing = asyncio.create_task(release_freed_memory())
    try:
        await main
    finally:
        releasing.cancel()
