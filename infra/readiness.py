"""Readiness: named checks run concurrently, each bounded in time, reported by name.

A check is an async callable that returns normally when healthy, raises `NotReady` with
a readable message when the service cannot do its job (503), or `Degraded` when it can
but something needs an operator (200, status "degraded", named). Any other exception is
reported by its class only: driver messages can carry hosts, users or connection
strings, and a readiness answer is public. The full error goes to the log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from loguru import logger
from pydantic import BaseModel

Check = Callable[[], Awaitable[None]]


class NotReady(Exception):
    """The check fails; the message is shown as is, so it names no secret."""


class Degraded(Exception):
    """Working, but an operator should look; the message is shown as is."""


class CheckResult(BaseModel):
    ok: bool
    degraded: bool = False
    detail: str | None = None


class ReadinessReport(BaseModel):
    """The body of /readyz: which checks fail, which are degraded, and each one's state."""

    status: Literal["ready", "degraded", "not_ready"]
    failing: list[str]
    degraded: list[str]
    checks: dict[str, CheckResult]


async def _outcome(name: str, check: Check, timeout_s: float) -> CheckResult:
    try:
        await asyncio.wait_for(check(), timeout_s)
    except TimeoutError:
        return CheckResult(ok=False, detail=f"no answer within {timeout_s:g}s")
    except NotReady as error:
        return CheckResult(ok=False, detail=str(error))
    except Degraded as error:
        return CheckResult(ok=True, degraded=True, detail=str(error))
    except Exception as error:
        logger.warning("readiness check {} failed: {}: {}", name, type(error).__name__, error)
        return CheckResult(ok=False, detail=f"unavailable ({type(error).__name__})")
    return CheckResult(ok=True)


async def run_checks(checks: dict[str, Check], timeout_s: float = 3) -> ReadinessReport:
    """The report for `checks`; `status` is not_ready if any fails."""
    outcomes = await asyncio.gather(*(_outcome(n, c, timeout_s) for n, c in checks.items()))
    results = dict(zip(checks, outcomes, strict=True))
    failing = [name for name, result in results.items() if not result.ok]
    degraded = [name for name, result in results.items() if result.degraded]
    status: Any = "not_ready" if failing else "degraded" if degraded else "ready"
    return ReadinessReport(status=status, failing=failing, degraded=degraded, checks=results)


def http_status(report: ReadinessReport) -> int:
    return 503 if report.failing else 200
