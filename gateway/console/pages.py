"""What each console page shows, gathered from the projections, the archive and the
root's own checks. Reads only; the router renders and acts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import quote

import httpx
from pydantic import BaseModel, BeforeValidator, Field, StringConstraints

from gateway.console.dashboards import Dashboard, Samples, load, samples_of_text
from gateway.console.trail import Trail, TrailLink, verified_trail
from gateway.routers import metrics
from gateway.routers.health import WAITING_LETTERS, readiness_checks
from gateway.runtime import GatewayRuntime
from infra.heartbeat import live_instances, live_processes
from infra.readiness import ReadinessReport, run_checks
from ledger.commands import MissionMode, MissionType
from ledger.state import MissionStatus
from ledger.wire import LedgerWire
from projections import queries
from projections.parking import summary

PAGE_SIZE = 50
WIRE = LedgerWire()
"""Built once: loading the Avro schemas takes ~50 ms, longer than a whole page should."""
STATUSES: tuple[str, ...] = MissionStatus.__args__  # type: ignore[attr-defined]
STAGES = (
    "intake",
    "queued",
    "planning",
    "tasks",
    "review",
    "approval",
    "writeback",
    "done",
)


def _blank_is_none(value: Any) -> Any:
    return None if value == "" else value


Optional = BeforeValidator(_blank_is_none)
"""An empty form field means "no filter"."""
Stage = Annotated[str, StringConstraints(max_length=40, pattern=r"^[a-z_]+$")]
Environment = Literal["local", "staging", "production"]
Minutes = Annotated[int, Field(ge=1, le=525_600)]
Text = Annotated[str, StringConstraints(max_length=200)]
Cursor = Annotated[str, StringConstraints(pattern=queries.CURSOR_PATTERN)]


class MissionFilters(BaseModel):
    """The missions list's filters, all in the URL so a link reproduces the view."""

    status: Annotated[MissionStatus | None, Optional] = None
    type: Annotated[MissionType | None, Optional] = None
    stage: Annotated[Stage | None, Optional] = None
    mode: Annotated[MissionMode | None, Optional] = None
    environment: Annotated[Environment | None, Optional] = None
    stuck_minutes: Annotated[Minutes | None, Optional] = None
    q: Annotated[Text | None, Optional] = None
    after: Annotated[Cursor | None, Optional] = None

    def where(self, now: datetime) -> tuple[Any, ...]:
        stuck_before = now - timedelta(minutes=self.stuck_minutes) if self.stuck_minutes else None
        text = self.q.replace("\x00", "").strip() if self.q else None
        return (
            self.status,
            self.type,
            self.stage,
            self.mode,
            self.environment,
            stuck_before,
            text or None,
        )

    def query(self, **changes: Any) -> str:
        """This view's query string with `changes` applied (for paging and status links)."""
        values = self.model_dump() | changes
        return "&".join(f"{k}={_quote(v)}" for k, v in values.items() if v not in (None, ""))


def _quote(value: Any) -> str:
    return quote(str(value), safe="")


def shown_count(n: int) -> str:
    """A status tab's count: "1,000+" past queries.COUNT_CAP."""
    return f"{queries.COUNT_CAP:,}+" if n > queries.COUNT_CAP else f"{n:,}"


async def missions_page(runtime: GatewayRuntime, filters: MissionFilters) -> dict[str, Any]:
    db = runtime.database
    where = filters.where(datetime.now(UTC))
    cursor = queries.decode_cursor(filters.after) if filters.after else None
    items, next_cursor = await queries.filtered_missions(db, where, cursor, PAGE_SIZE)
    counts = await queries.status_counts(db, where, STATUSES)
    capped = any(n > queries.COUNT_CAP for n in counts.values())
    total = sum(min(n, queries.COUNT_CAP) for n in counts.values())
    return {
        "filters": filters,
        "missions": items,
        "next_cursor": next_cursor,
        "counts": {status: shown_count(n) for status, n in counts.items()},
        "total": f"{total:,}+" if capped else f"{total:,}",
        "statuses": STATUSES,
        "stages": STAGES,
        "now": datetime.now(UTC),
    }


HISTORY_SHOWN = (50, 450)
"""How many events of a long history the mission page shows from its start and its end
(the printable page and the JSON export show all): at its history limit a mission's
page was 6.8 MB of HTML. The chain verdict above covers every event either way."""


def history_rows(
    links: list[TrailLink], printable: bool
) -> tuple[list[TrailLink], int, list[TrailLink]]:
    """The links the page lists first, how many it leaves out after them, and the last."""
    head, tail = HISTORY_SHOWN
    if printable or len(links) <= head + tail:
        return links, 0, []
    return links[:head], len(links) - head - tail, links[-tail:]


async def mission_page(runtime: GatewayRuntime, mission_id: str) -> dict[str, Any] | None:
    """Everything about one mission: row, verified trail, packet, decisions, writebacks."""
    db = runtime.database
    row = await queries.mission(db, mission_id)
    if row is None:
        return None
    trail = await trail_of(runtime, mission_id)
    found = await queries.evidence(db, mission_id)
    approvals = await queries.mission_approvals(db, mission_id)
    return {
        "mission": row,
        "trail": trail,
        "packet": _packet(found["packet"]),
        "artifacts": found["artifacts"],
        "tasks": found["tasks"],
        "decisions": found["decisions"],
        "writebacks": [_with_changes(a) for a in approvals],
        "now": datetime.now(UTC),
    }


async def trail_of(runtime: GatewayRuntime, mission_id: str) -> Trail:
    rows = await queries.archived_trail(runtime.database, mission_id)
    return verified_trail(mission_id, rows, WIRE)


def _packet(latest: dict[str, Any] | None) -> dict[str, Any] | None:
    """A reviewer packet with its stored document parsed (`document`), for the templates."""
    if latest is None:
        return None
    content = latest.get("content")
    document = json.loads(content) if content else {}
    return latest | {"document": document}


def _with_changes(row: dict[str, Any]) -> dict[str, Any]:
    changes = row["changes"]
    return row | {"changes": json.loads(changes) if isinstance(changes, str) else changes}


APPROVALS_PAGE_SIZE = 50
"""Pending approvals the console's queue shows a page, each with its diff and brief."""


async def approvals_page(runtime: GatewayRuntime, after: str | None) -> dict[str, Any]:
    """A page of the queue, oldest first (from `after`, a cursor), each with its diff
    against the CRM record and its brief; a fixed number of queries however long the
    queue (one a pending approval took 2.5 s a page with 3,000 waiting)."""
    db = runtime.database
    cursor = queries.decode_cursor(after) if after else None
    pending, next_cursor = await queries.pending_approvals(db, cursor, APPROVALS_PAGE_SIZE)
    pending = [_with_changes(a) for a in pending]
    missions = sorted({a["mission_id"] for a in pending})
    packets = await queries.latest_packets(db, missions)
    return await approvals_backlog(runtime) | {
        "pending": pending,
        "next_cursor": next_cursor,
        "paged": cursor is not None,
        "decided": [_with_changes(a) for a in await queries.decided_approvals(db, 50)],
        "accounts": await queries.crm_accounts(db, sorted({a["record_ref"] for a in pending})),
        "objectives": await queries.objectives(db, missions),
        "packets": {mission: _packet(packet) for mission, packet in packets.items()},
    }


async def approvals_backlog(runtime: GatewayRuntime) -> dict[str, Any]:
    """How many approvals wait and for how long: what the queue's page polls every 5 s,
    one query (polling the whole page rendered 50 briefs and diffs to read one line)."""
    total, oldest_age_s = await queries.approval_backlog(runtime.database)
    return {"pending_total": total, "oldest_age_minutes": oldest_age_s / 60}


async def health_page(runtime: GatewayRuntime) -> dict[str, Any]:
    readiness: ReadinessReport = await run_checks(readiness_checks(runtime))
    pool = await runtime.database.pool()
    lag: dict[str, int] = {}
    for details in await live_instances(pool, "projector"):
        lag |= {str(p): int(v) for p, v in details.get("lag", {}).items()}
    return {
        "readiness": readiness,
        "lag": dict(sorted(lag.items(), key=lambda item: int(item[0]))),
        "parked": await summary(pool),
        "set_aside": await pool.fetchval("SELECT count(*) FROM ledger_set_aside"),
        "dead_letters": [dict(r) for r in await pool.fetch(WAITING_LETTERS)],
        "providers": [dict(r) for r in await pool.fetch("SELECT * FROM provider_health")],
        "colony": await colony_status(runtime),
        "processes": await live_processes(pool),
        "environment": runtime.settings.VELOCITY_ENV,
        "rollout_step": runtime.settings.VELOCITY_ROLLOUT_STEP,
    }


async def colony_status(runtime: GatewayRuntime) -> dict[str, Any] | None:
    """The colony's admission and breakers, or None when it cannot be asked."""
    if not runtime.settings.COLONY_ENABLED:
        return None
    try:
        answer = await runtime.colony.get("/status")
    except httpx.HTTPError:
        return None
    if answer.status_code != 200:
        return None
    status: dict[str, Any] = answer.json()
    return status


async def dashboards_page(runtime: GatewayRuntime) -> list[Dashboard]:
    await metrics.refresh(runtime)
    return load(metrics.REGISTRY, await colony_samples(runtime))


async def colony_samples(runtime: GatewayRuntime) -> Samples:
    """The colony's /metrics as samples; none when it cannot be asked."""
    if not runtime.settings.COLONY_ENABLED:
        return {}
    try:
        answer = await runtime.colony.get("/metrics")
    except httpx.HTTPError:
        return {}
    return samples_of_text(answer.text) if answer.status_code == 200 else {}
