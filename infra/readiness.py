"""Readiness: named checks run concurrently, each bounded in time, reported by name.

A check is an async callable that returns normally when healthy and raises with a
readable message when not. The report names every failing check and why, so an
operator reading a 503 from /readyz knows where to look.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

Check = Callable[[], Awaitable[None]]


async def _outcome(check: Check, timeout_s: float) -> dict[str, Any]:
    try:
        await asyncio.wait_for(check(), timeout_s)
    except TimeoutError:
        return {"ok": False, "detail": f"no answer within {timeout_s:g}s"}
    except Exception as error:
        return {"ok": False, "detail": str(error) or type(error).__name__}
    return {"ok": True}


async def run_checks(checks: dict[str, Check], timeout_s: float = 3) -> tuple[bool, dict[str, Any]]:
    """(all healthy, report body) for `checks`."""
    outcomes = await asyncio.gather(*(_outcome(c, timeout_s) for c in checks.values()))
    results = dict(zip(checks, outcomes, strict=True))
    failing = [name for name, result in results.items() if not result["ok"]]
    body = {"status": "not_ready" if failing else "ready", "failing": failing, "checks": results}
    return not failing, body
