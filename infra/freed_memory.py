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
worker thread (ctypes releases the GIL), and only when resident memory has grown
(`GROWTH_BYTES`). Elsewhere than glibc on Linux there is nothing to call, and nothing is
done.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
from collections.abc import Callable
from pathlib import Path

from loguru import logger

CHECK_EVERY_S = 20.0
GROWTH_BYTES = 8 * 1024 * 1024
"""Release only after RSS grew this much over its lowest since the last release:
`malloc_trim` holds each arena's lock while it walks it (10-50 ms on a fragmented 150 MB
heap, measured), and the service's own allocations wait meanwhile. A service at rest or
in a steady stream does not pay it; one in a burst pays it every CHECK_EVERY_S at most.
8 MB: under a tenth of a service's ~110 MB."""


def malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim` on Linux, or None (no such call, or no /proc to watch)."""
    if not Path("/proc/self/statm").exists():
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


def resident_bytes() -> int:
    """This process's resident set (Linux's /proc: no lock taken, unlike asking malloc)."""
    resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


async def release_freed_memory(
    every_s: float = CHECK_EVERY_S, growth_bytes: int = GROWTH_BYTES
) -> None:
    """Forever: every `every_s`, if RSS grew by `growth_bytes` since the last release, give
    the pages freed since back to the operating system."""
    trim = malloc_trim()
    if trim is None:
        logger.info("no malloc_trim here: freed memory stays with the process")
        return
    floor = resident_bytes()
    while True:
        await asyncio.sleep(every_s)
        resident = resident_bytes()
        if resident - floor >= growth_bytes:
            await asyncio.to_thread(trim, 0)
            resident = resident_bytes()
            if resident - floor >= growth_bytes:
                floor = resident  # it holds more now: growth counts from here
        floor = min(floor, resident)
