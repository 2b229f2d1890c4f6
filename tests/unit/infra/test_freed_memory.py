"""A service hands the memory a burst freed back to the operating system."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from infra.freed_memory import malloc_trim

BURST = textwrap.dedent(
    """
    import asyncio
    from pathlib import Path

    from infra.freed_memory import release_freed_memory

    def rss_mb():
        status = Path("/proc/self/status").read_text().splitlines()
        return int(next(l for l in status if l.startswith("VmRSS:")).split()[1]) // 1024

    burst = [bytes(1024) + bytes([i % 256]) for i in range(80_000)]  # ~80 MB, glibc's heap
    kept = bytes(1024) + b"kept"  # allocated last: pins the heap's top
    del burst
    freed = rss_mb()

    async def one_release():
        releasing = asyncio.create_task(release_freed_memory(every_s=0.01))
        await asyncio.sleep(0.5)
        releasing.cancel()

    asyncio.run(one_release())
    print(freed, rss_mb(), len(kept))
    """
)


@pytest.mark.skipif(malloc_trim() is None, reason="not glibc: nothing to hand back")
def test_a_burst_freed_leaves_resident_memory() -> None:
    out = subprocess.run(
        [sys.executable, "-c", BURST], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    freed, released, _ = (int(n) for n in out.split())
    assert freed - released >= 50, f"RSS after the burst was freed {freed} MB, then {released} MB"
