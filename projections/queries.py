"""Read queries over the projections: what the root API serves, and nothing else.

Functions take anything with asyncpg-style `fetch`/`fetchrow` (the root wraps its pool so
that a database outage becomes a 503 problem).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from infra.database import sql_list
from ledger.state import OPEN_STATUSES


class Reader(Protocol):
    async def fetch(self, query: str, *args: Any) -> list[Any]: ...
    async def fetchrow(self, query: str, *args: Any) -> Any: ...


MISSION_COLUMNS = """
mission_id, mission_type AS type, mode, environment, objective, project_id, lead_company,
lead_contact, status, stage, status_since, time_budget_ms, token_budget, tokens_used,
time_used_ms, requested_by, created_at, updated_at, completed_at, output, verdict,
failure_reason, last_rejection, replay_of, replayed_as, last_sequence, last_hash
"""


async def mission(db: Reader, mission_id: str) -> dict[str, Any] | None:
    row = await db.fetchrow(
        f"SELECT {MISSION_COLUMNS} FROM missions WHERE mission_id = $1", mission_id
    )
    return dict(row) if row else None


MissionTrace = tuple[str, str | None]
"""A mission's trace id and its last event's traceparent (infra/tracing.py)."""


async def mission_standings(
    db: Reader, mission_ids: list[str]
) -> dict[str, tuple[str, MissionTrace]]:
    """Each known mission's status and trace (the unknown left out), in one query: for
    checks on writes that then record something in those missions, on their traces."""
    rows = await db.fetch(
        "SELECT mission_id, status, trace_id, traceparent FROM missions"
        " WHERE mission_id = ANY($1::text[])",
        mission_ids,
    )
    return {
        row["mission_id"]: (str(row["status"]), (row["trace_id"], row["traceparent"]))
        for row in rows
    }


async def mission_trace(db: Reader, mission_id: str) -> MissionTrace | None:
    """The mission's trace id and its last event's traceparent (infra/tracing.py)."""
    row = await db.fetchrow(
        "SELECT trace_id, traceparent FROM missions WHERE mission_id = $1", mission_id
    )
    return (row["trace_id"], row["traceparent"]) if row else None


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
CURSOR_PATTERN = r"^[0-9]{1,16}_[A-Za-z0-9][A-Za-z0-9._:@-]{0,199}$"
"""A keyset position, `<time in µs since 1970>_<id>` (a mission's `created_at` and id, an
approval's `requested_at` and id): any such string is a valid place to continue from, so
the pattern describes every cursor the API accepts."""

Position = tuple[datetime, str]
"""Where a keyset page ends: the last row's time and id (what a cursor encodes)."""


def encode_cursor(at: datetime, row_id: str) -> str:
    return f"{(at - EPOCH) // MICROSECOND}_{row_id}"


def decode_cursor(cursor: str) -> Position:
    """(time, id) of a cursor matching CURSOR_PATTERN."""
    micros, _, row_id = cursor.partition("_")
    return EPOCH + int(micros) * MICROSECOND, row_id


def keyset_page(
    rows: list[Any], limit: int, keys: tuple[str, str] = ("created_at", "mission_id")
) -> tuple[list[dict[str, Any]], str | None]:
    """The first `limit` of `limit + 1` rows fetched, and the cursor after them if more;
    `keys` name the row's time and id columns the page is ordered by."""
    items = [dict(row) for row in rows[:limit]]
    more = len(rows) > limit
    next_cursor = encode_cursor(items[-1][keys[0]], items[-1][keys[1]]) if more else None
    return items, next_cursor


async def missions_page(
    db: Reader,
    *,
    mission_type: str | None,
    status: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
    cursor: Position | None,
    limit: int,
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first; the cursor is the last row's (created_at, mission_id)."""
    rows = await db.fetch(
        f"SELECT {MISSION_COLUMNS} FROM missions"
        " WHERE ($1::text IS NULL OR mission_type = $1) AND ($2::text IS NULL OR status = $2)"
        " AND ($3::timestamptz IS NULL OR created_at >= $3)"
        " AND ($4::timestamptz IS NULL OR created_at < $4)"
        " AND ($5::timestamptz IS NULL OR (created_at, mission_id) < ($5, $6))"
        " ORDER BY created_at DESC, mission_id DESC LIMIT $7",
        mission_type,
        status,
        created_after,
        created_before,
        cursor[0] if cursor else None,
        cursor[1] if cursor else None,
        limit + 1,
    )
    return keyset_page(rows, limit)


async def events_page(
    db: Reader, mission_id: str, after_sequence: int, limit: int
) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT sequence, event_id, event_type, occurred_at, actor, causation_id, correlation_id,"
        " trace_id, prev_hash, hash, data FROM ledger_events"
        " WHERE mission_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3",
        mission_id,
        after_sequence,
        limit,
    )
    return [dict(row) for row in rows]


async def latest_packets(db: Reader, mission_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Each mission's latest reviewer packet with its stored document (`content`), in one
    query; missions without one left out."""
    rows = await db.fetch(
        "SELECT p.mission_id, p.packet_hash, p.verdict, p.output, p.checks, p.recorded_at,"
        " b.content FROM unnest($1::text[]) AS m(mission_id) CROSS JOIN LATERAL"
        " (SELECT * FROM reviewer_packets r WHERE r.mission_id = m.mission_id"
        "  ORDER BY r.sequence DESC LIMIT 1) AS p"
        " LEFT JOIN artifact_blobs b ON b.content_hash = p.packet_hash",
        mission_ids,
    )
    return {row["mission_id"]: dict(row) for row in rows}


async def objectives(db: Reader, mission_ids: list[str]) -> dict[str, str]:
    """Each known mission's objective, in one query."""
    rows = await db.fetch(
        "SELECT mission_id, objective FROM missions WHERE mission_id = ANY($1::text[])",
        mission_ids,
    )
    return {row["mission_id"]: row["objective"] for row in rows}


async def evidence(db: Reader, mission_id: str) -> dict[str, Any]:
    """The latest reviewer packet (with its stored document), artifacts, tasks, decisions."""
    packet = (await latest_packets(db, [mission_id])).get(mission_id)
    artifacts = await db.fetch(
        "SELECT artifact_id, kind, content_hash, source, size_bytes, recorded_at FROM artifacts"
        " WHERE mission_id = $1 ORDER BY recorded_at, artifact_id",
        mission_id,
    )
    tasks = await db.fetch(
        "SELECT task_id, kind, description, status, attempt, summary, error, tokens_used,"
        " duration_ms, notes FROM tasks WHERE mission_id = $1 ORDER BY task_id",
        mission_id,
    )
    decisions = await db.fetch(
        "SELECT sequence, task_id, tool, decision, rule_id, reason, decided_at"
        " FROM policy_decisions WHERE mission_id = $1 ORDER BY sequence",
        mission_id,
    )
    return {
        "packet": packet,
        "artifacts": [dict(r) for r in artifacts],
        "tasks": [dict(r) for r in tasks],
        "decisions": [dict(r) for r in decisions],
    }


APPROVAL_COLUMNS = """
writeback_id AS approval_id, mission_id, target, record_ref, changes, rationale, summary, status,
requested_at, extract(epoch FROM now() - requested_at) AS age_seconds, decided_at, decided_by,
reason, finished_at, detail
"""


APPROVAL_PAGE_MAX = 500
"""The most pending approvals one page holds (the API's `pending_limit` bound)."""


async def approval_backlog(db: Reader, mission_id: str | None = None) -> tuple[int, float]:
    """How many approvals are pending (of one mission, if given), and the oldest one's age
    in seconds (0 if none)."""
    row = await db.fetchrow(
        "SELECT count(*) AS n, coalesce(extract(epoch FROM now() - min(requested_at)), 0) AS age"
        " FROM approvals WHERE status = 'pending' AND ($1::text IS NULL OR mission_id = $1)",
        mission_id,
    )
    return int(row["n"]), float(row["age"])


async def pending_approvals(
    db: Reader, cursor: Position | None, limit: int, mission_id: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of pending approvals (of one mission, if given), oldest first: the order an
    operator works them in. The cursor is the last one's (requested_at, id); the pending
    rows have their own index in that order (migration 0017), so a page costs its rows
    wherever it starts."""
    rows = await db.fetch(
        f"SELECT {APPROVAL_COLUMNS} FROM approvals WHERE status = 'pending'"
        " AND ($1::timestamptz IS NULL OR (requested_at, writeback_id) > ($1, $2))"
        " AND ($4::text IS NULL OR mission_id = $4)"
        " ORDER BY requested_at, writeback_id LIMIT $3",
        cursor[0] if cursor else None,
        cursor[1] if cursor else None,
        limit + 1,
        mission_id,
    )
    return keyset_page(rows, limit, ("requested_at", "approval_id"))


async def decided_approvals(
    db: Reader, limit: int, mission_id: str | None = None
) -> list[dict[str, Any]]:
    """The latest decided approvals (of one mission, if given), newest first."""
    rows = await db.fetch(
        f"SELECT {APPROVAL_COLUMNS} FROM approvals WHERE status <> 'pending'"
        " AND ($2::text IS NULL OR mission_id = $2)"
        " ORDER BY decided_at DESC NULLS LAST LIMIT $1",
        limit,
        mission_id,
    )
    return [dict(row) for row in rows]


async def approval(db: Reader, approval_id: str) -> dict[str, Any] | None:
    row = await db.fetchrow(
        f"SELECT {APPROVAL_COLUMNS} FROM approvals WHERE writeback_id = $1", approval_id
    )
    return dict(row) if row else None


async def outcomes_of(db: Reader, command_ids: list[str]) -> dict[str, str | None]:
    """The commands among `command_ids` the archive holds events of: each mapped to the
    ledger's "reason: detail" if it rejected it, else None (applied)."""
    rows = await db.fetch(
        "SELECT DISTINCT ON (causation_id) causation_id, CASE WHEN event_type ="
        " 'CommandRejected' THEN concat(data->>'reason', ': ', data->>'detail') END AS rejection"
        " FROM ledger_events WHERE causation_id = ANY($1::text[])"
        " ORDER BY causation_id, event_type = 'CommandRejected' DESC",
        command_ids,
    )
    return {row["causation_id"]: row["rejection"] for row in rows}


MISSION_FILTER = f"""
($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR mission_type = $2)
AND ($3::text IS NULL OR stage = $3) AND ($4::text IS NULL OR mode = $4)
AND ($5::text IS NULL OR environment = $5)
AND ($6::timestamptz IS NULL OR (status_since < $6 AND status IN ({sql_list(OPEN_STATUSES)})))
AND ($7::text IS NULL OR mission_id = $7 OR objective ILIKE '%' || $7 || '%')
"""


async def filtered_missions(
    db: Reader,
    where: tuple[Any, ...],
    cursor: Position | None,
    limit: int,
) -> tuple[list[dict[str, Any]], str | None]:
    """Missions matching `where` (the seven MISSION_FILTER parameters), newest first."""
    rows = await db.fetch(
        f"SELECT {MISSION_COLUMNS} FROM missions WHERE {MISSION_FILTER}"
        " AND ($8::timestamptz IS NULL OR (created_at, mission_id) < ($8, $9))"
        " ORDER BY created_at DESC, mission_id DESC LIMIT $10",
        *where,
        cursor[0] if cursor else None,
        cursor[1] if cursor else None,
        limit + 1,
    )
    return keyset_page(rows, limit)


COUNT_CAP = 1_000
"""How far the console counts each status under a filter: beyond it a tab says "1,000+".
Counting every mission on each page load read the whole status index (~200 ms with a
million missions in the view); a capped count reads at most this many rows a status.
How many missions ended, by type and outcome, is on /metrics and its dashboards."""


async def status_counts(
    db: Reader, where: tuple[Any, ...], statuses: Sequence[str], cap: int = COUNT_CAP
) -> dict[str, int]:
    """Missions per status under `where` with its status filter left out, each counted up
    to `cap` + 1 (meaning: more than `cap`); statuses with none left out."""
    per_status = " UNION ALL ".join(
        f"SELECT {sql_list((status,))} AS status, count(*) AS n FROM (SELECT 1 FROM missions"
        f" WHERE status = {sql_list((status,))} AND {MISSION_FILTER} LIMIT $8) AS capped"
        for status in statuses
    )  # each status spelled out, so PostgreSQL plans each from its own share of the rows
    rows = await db.fetch(per_status, None, *where[1:], cap + 1)
    return {row["status"]: row["n"] for row in rows if row["n"]}


async def archived_trail(db: Reader, mission_id: str) -> list[dict[str, Any]]:
    """The mission's archived rows with their original record bytes, in sequence order."""
    rows = await db.fetch(
        "SELECT mission_id, sequence, hash, record FROM ledger_events WHERE mission_id = $1"
        " ORDER BY sequence",
        mission_id,
    )
    return [dict(row) for row in rows]


async def mission_approvals(db: Reader, mission_id: str) -> list[dict[str, Any]]:
    rows = await db.fetch(
        f"SELECT {APPROVAL_COLUMNS} FROM approvals WHERE mission_id = $1 ORDER BY requested_at",
        mission_id,
    )
    return [dict(row) for row in rows]


async def crm_accounts(db: Reader, account_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The CRM records writebacks target, as they are now."""
    rows = await db.fetch(
        "SELECT account_id, company, contact, qualification_score, next_step, updated_at"
        " FROM crm_accounts WHERE account_id = ANY($1::text[])",
        account_ids,
    )
    return {row["account_id"]: dict(row) for row in rows}


GATE_RUN_COLUMNS = """
run_id, stream_id, version, environment, root_url, started_by, started_at, completed_at, passed,
checks, failed
"""


async def gate_runs(db: Reader, environment: str | None, limit: int) -> list[dict[str, Any]]:
    """Gate runs newest first, each with its checks in the order they were recorded."""
    runs = await db.fetch(
        f"SELECT {GATE_RUN_COLUMNS} FROM gate_runs WHERE ($1::text IS NULL OR environment = $1)"
        " ORDER BY started_at DESC LIMIT $2",
        environment,
        limit,
    )
    return [dict(run) | {"results": await gate_checks(db, run["stream_id"])} for run in runs]


async def gate_run(db: Reader, run_id: str) -> dict[str, Any] | None:
    run = await db.fetchrow(f"SELECT {GATE_RUN_COLUMNS} FROM gate_runs WHERE run_id = $1", run_id)
    return dict(run) | {"results": await gate_checks(db, run["stream_id"])} if run else None


async def gate_checks(db: Reader, stream_id: str) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT sequence, gate, check_name AS check, passed, evidence, duration_ms, recorded_at"
        " FROM gate_checks WHERE stream_id = $1 ORDER BY sequence",
        stream_id,
    )
    return [dict(row) for row in rows]


async def passing_run(db: Reader, environment: str, version: str) -> str | None:
    """The latest gate run of `version` in `environment` that passed, if any."""
    row = await db.fetchrow(
        "SELECT run_id FROM gate_runs WHERE environment = $1 AND version = $2 AND passed"
        " ORDER BY completed_at DESC LIMIT 1",
        environment,
        version,
    )
    return str(row["run_id"]) if row else None


async def rollout(db: Reader) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each environment's recorded step, and the latest changes newest first."""
    steps = await db.fetch("SELECT * FROM rollout_steps ORDER BY environment")
    history = await db.fetch("SELECT * FROM rollout_history ORDER BY changed_at DESC LIMIT 50")
    return [dict(r) for r in steps], [dict(r) for r in history]


async def rollout_step(db: Reader, environment: str) -> int:
    """The step the ledger holds for `environment` (1 until an operator advances it)."""
    row = await db.fetchrow("SELECT step FROM rollout_steps WHERE environment = $1", environment)
    return int(row["step"]) if row else 1


async def rollout_sequence(db: Reader, environment: str) -> int:
    """The position of the latest change of `environment`'s rollout (0: none yet)."""
    row = await db.fetchrow(
        "SELECT max(sequence) AS last FROM rollout_history WHERE environment = $1", environment
    )
    return int(row["last"] or 0) if row else 0
