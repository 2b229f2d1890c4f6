"""Handing the memory a service has freed back to the operating system, now and then.

A burst (a backlog after an outage, thousands of missions requested at once) makes a
service allocate far more than it keeps: fetched record batches of megabytes, decoded
events, reactions in flight. When the burst is over, Python frees those objects, but
glibc's allocator keeps the pages: its heap shrinks only from the top, and one live
allocation above the freed ones pins them all. So resident memory was the high-water mark
of the largest burst so far, not what the service holds: the colony's RSS grew 124 ->
165 MB over a 500k-event soak step while its live heap stayed the same, and fell back to
~120 MB with `malloc_trim` every 20 s (bench/colony_soak.py, three A/B runs).

`malloc_trim(0)` returns every free page of every arena (glibc >= 2.8). It runs in a
worker thread (ctypes releases the GIL), but glibc locks each arena while it trims it, so
the service's own allocations wait: 30-50 ms once on a fragmented 150 MB heap, 11 ms when
repeated, far less on a heap trimmed 20 s before. Trimming only when RSS had grown was
tried and dropped: the pages a burst frees at its end were resident before it ended, so
RSS never grows after them and they stayed (colony soak 1.16 of its first step, against
1.09 trimming every time). Elsewhere than glibc (musl, macOS) there is nothing to call,
and nothing is done.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
from collections.abc import Callable

from loguru import logger

RELEASE_EVERY_S = 20.0


def malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`, or None where the C library has none."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


async def release_freed_memory(every_s: float = RELEASE_EVERY_S) -> None:
    """Forever: every `every_s`, give the pages freed since back to the operating system."""
    trim = malloc_trim()
    if trim is None:
        logger.info("no malloc_trim in this C library: freed memory stays with the process")
        return
    while True:
        await asyncio.sleep(every_s)
        await asyncio.to_thread(trim, 0)
