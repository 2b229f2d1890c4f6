"""Liveness and readiness of the root.

/readyz is 503 when the root cannot do its job (a dependency down, the colony refusing the
root's key or refusing to work, the ledger's writers or projector missing) and 200
"degraded" when it can but an operator should look (events parked by a view, records set
aside, dead letters waiting). Details name the check and the direction of a refused key,
never a key, a host or a driver's message.
"""

from __future__ import annotations

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from gateway.runtime import GatewayRuntime
from infra.heartbeat import check_partitions_owned, live_instances
from infra.kafka import probe_broker
from infra.readiness import Check, Degraded, NotReady, ReadinessReport, http_status, run_checks
from infra.topics import EVENTS
from projections.migrate import pending_migrations
from projections.parking import summary

router = APIRouter(tags=["health"])
SET_ASIDE = "SELECT count(*) FROM ledger_set_aside"
WAITING_LETTERS = """
SELECT reason, sum(waiting)::bigint AS letters FROM dead_letter_counts WHERE waiting > 0
GROUP BY reason ORDER BY reason
"""


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive (it answers); says nothing about dependencies."""
    return {"status": "alive"}


@router.get(
    "/readyz",
    response_model=ReadinessReport,
    responses={503: {"description": "A named check fails", "model": ReadinessReport}},
)
async def readyz(request: Request) -> JSONResponse:
    """Broker, database, migrations, decider, projector and (if enabled) colony are healthy;
    "degraded" names what needs an operator while the root still works."""
    runtime: GatewayRuntime = request.app.state.runtime
    checks = readiness_checks(runtime)
    if request.app.state.draining:
        checks["draining"] = shutting_down
    report = await run_checks(checks)
    return JSONResponse(report.model_dump(exclude_none=True), status_code=http_status(report))


def readiness_checks(runtime: GatewayRuntime) -> dict[str, Check]:
    """The root's checks by name."""

    async def database() -> None:
        pool = await runtime.database.pool()
        await pool.fetchval("SELECT 1")

    async def migrations() -> None:
        pool = await runtime.database.pool()
        async with pool.acquire() as connection:
            pending = await pending_migrations(connection)
        if pending:
            raise NotReady(f"not at head; pending: {', '.join(pending)}")

    def heartbeat(service: str) -> Check:
        async def check() -> None:
            pool = await runtime.database.pool()
            await check_partitions_owned(pool, service, EVENTS.partitions)

        return check

    checks: dict[str, Check] = {
        "broker": lambda: probe_broker(runtime.commands.options),
        "database": database,
        "migrations": migrations,
        "decider": heartbeat("decider"),
        "projector": heartbeat("projector"),
        "projections": lambda: parked_views(runtime),
        "dead_letters": lambda: waiting_letters(runtime),
    }
    if runtime.settings.COLONY_ENABLED:
        checks["colony"] = lambda: colony_ready(runtime)
    return checks


async def shutting_down() -> None:
    raise NotReady("the root is stopping")


async def parked_views(runtime: GatewayRuntime) -> None:
    """Degraded while a view has parked events, the archive set records aside, or the
    projector holds a partition at a record of a writer schema it does not know."""
    pool = await runtime.database.pool()
    groups = await summary(pool)
    aside = await pool.fetchval(SET_ASIDE)
    held = {
        partition: why
        for details in await live_instances(pool, "projector")
        for partition, why in details.get("held", {}).items()
    }
    if not groups and not aside and not held:
        return
    views: dict[str, list[int]] = {}
    for group in groups:
        views.setdefault(group["projection"], []).append(group["events"])
    parts = [
        f"{view}: {sum(counts)} event(s) of {len(counts)} mission(s) parked"
        for view, counts in sorted(views.items())
    ]
    if aside:
        parts.append(f"event_archive: {aside} record(s) of the log set aside")
    parts += [f"events partition {p} held at {why}" for p, why in sorted(held.items())]
    raise Degraded("; ".join(parts) + " (velocity projections parked)")


async def waiting_letters(runtime: GatewayRuntime) -> None:
    """Degraded while dead letters wait for a re-drive or an operator's look."""
    pool = await runtime.database.pool()
    rows = await pool.fetch(WAITING_LETTERS)
    if rows:
        reasons = ", ".join(f"{row['reason']} {row['letters']}" for row in rows)
        raise Degraded(f"dead letters not re-driven: {reasons} (velocity deadletters list)")


async def colony_ready(runtime: GatewayRuntime) -> None:
    """The colony accepts the root's key (root→colony) and is itself ready, which includes
    the root accepting the colony's key (colony→root); with its reactors on, its instances
    own every partition, as the decider's and the projector's must (a colony still joining
    its group leaves the first missions waiting)."""
    try:
        status = await runtime.colony.get("/status")
        ready = await runtime.colony.get("/readyz")
    except httpx.HTTPError as error:
        unreachable = f"colony unreachable at COLONY_SERVICE_BASE_URL ({type(error).__name__})"
        raise NotReady(unreachable) from error
    if status.status_code in (401, 403):
        raise NotReady(
            "root→colony: the colony refused the root's COLONY_SERVICE_API_KEY"
            " (set the same value on both)"
        )
    if ready.status_code != 200:
        report = ReadinessReport.model_validate(ready.json())
        reasons = "; ".join(
            f"{name}: {report.checks[name].detail}"
            for name in report.failing
            if name in report.checks
        )
        raise NotReady(f"colony not ready: {reasons}")
    if status.json().get("reactors"):
        await check_partitions_owned(await runtime.database.pool(), "colony", EVENTS.partitions)
