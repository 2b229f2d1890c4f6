"""bench/console: p50/p95 of every console page with 10,000 missions in the database,
2,000 of them waiting for an operator's approval.

The missions go through the real path (commands on the broker, the decider, the
projector), one of them with a 200-event trail; the colony's reactors are off so nothing
moves while pages are timed. Each page is fetched ROUNDS times by a signed-in operator
over HTTP; the raw path beside it is the page's own queries through asyncpg alone (no
HTTP, no HTML), where a page has one main query.
Run with `make bench-console` or `python -m bench.console [missions [awaiting]]`.
"""

from __future__ import annotations

import asyncio
import re
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

from bench.common import (
    BenchInfra,
    embedded_infrastructure,
    latency_cuts,
    mission_commands,
    running_stack,
)
from gateway.console.pages import PAGE_SIZE, STATUSES, MissionFilters
from infra.topics import TopicNames
from ledger.commands import Command
from ledger.wire import LedgerWire
from projections import queries
from tests.factories import crm_awaiting_approval, request_body

ROUNDS = 60
OPERATOR_KEY = "local-operator-key"


def awaiting_approval(mission_id: str) -> list[Command]:
    """A CRM mission up to its proposed writeback, with budgets that never run out."""
    return crm_awaiting_approval(
        mission_id, request_body(time_budget_ms=10**12, token_budget=10**12)
    )


async def seed(
    infra: BenchInfra, prefix: str, database_url: str, missions: int, awaiting: int
) -> str:
    """`missions` missions: `awaiting` of them wait for an approval, one has 200 events,
    the others five; returns the long one's id."""
    wire = LedgerWire()
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers, acks="all", linger_ms=5)
    await producer.start()
    long_trail = str(uuid.uuid4())
    now = datetime.now(UTC)
    try:
        plan = [(str(uuid.uuid4()), 5 if n >= awaiting else 0) for n in range(missions - 1)] + [
            (long_trail, 200)
        ]
        for start in range(0, len(plan), 500):
            sends = []
            for mission_id, events in plan[start : start + 500]:
                commands = (
                    mission_commands(mission_id, events, now)
                    if events
                    else awaiting_approval(mission_id)
                )
                for command in commands:
                    record = wire.encode_command(command)
                    sends.append(
                        await producer.send(
                            TopicNames(prefix).commands,
                            record.value,
                            record.key,
                            headers=record.headers,
                        )
                    )
            await asyncio.gather(*sends)
            print(f"  sent {min(start + 500, len(plan))}/{len(plan)} missions", flush=True)
    finally:
        await producer.stop()
    connection = await asyncpg.connect(database_url)
    try:
        for _ in range(2_400):
            if await projected(connection, missions, awaiting, long_trail):
                return long_trail
            await asyncio.sleep(0.5)
    finally:
        await connection.close()
    raise TimeoutError("the projector did not catch up in 20 minutes")


async def projected(
    connection: asyncpg.Connection, missions: int, awaiting: int, long_trail: str
) -> bool:
    count = await connection.fetchval("SELECT count(*) FROM missions")
    pending = await connection.fetchval("SELECT count(*) FROM approvals WHERE status = 'pending'")
    last = await connection.fetchval(
        "SELECT last_sequence FROM missions WHERE mission_id = $1", long_trail
    )
    return bool(count >= missions and pending >= awaiting and (last or 0) >= 200)


async def timed(fetch: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """p50 and p95 in ms of ROUNDS calls."""
    cuts = await latency_cuts(fetch, ROUNDS)
    return cuts[49], cuts[94]


async def signed_in(root: str) -> httpx.AsyncClient:
    """A console session; its key goes along too, for the API rows (`/approvals`)."""
    bearer = {"Authorization": f"Bearer {OPERATOR_KEY}"}
    client = httpx.AsyncClient(base_url=root, timeout=30, headers=bearer)
    form = await client.get("/console/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert token, "the sign-in form carries its token"
    answer = await client.post(
        "/console/login", data={"key": OPERATOR_KEY, "login_token": token.group(1)}
    )
    assert answer.status_code == 303, answer.text[:300]
    return client


def page(client: httpx.AsyncClient, path: str) -> Callable[[], Awaitable[object]]:
    async def fetch() -> object:
        answer = await client.get(path)
        if answer.status_code != 200:
            raise RuntimeError(f"{path} answered {answer.status_code}")
        return answer

    return fetch


def raw(pool: asyncpg.Pool, query: str, *args: object) -> Callable[[], Awaitable[object]]:
    async def fetch() -> object:
        return await pool.fetch(query, *args)

    return fetch


def raw_list(pool: asyncpg.Pool, **filters: object) -> Callable[[], Awaitable[object]]:
    """The missions page's own two queries (page and counts), without HTTP or HTML."""
    where = MissionFilters.model_validate(filters).where(datetime.now(UTC))

    async def fetch() -> object:
        page = await queries.filtered_missions(pool, where, None, PAGE_SIZE)
        return page, await queries.status_counts(pool, where, STATUSES)

    return fetch


def raw_queue(pool: asyncpg.Pool, limit: int) -> Callable[[], Awaitable[object]]:
    """The approval queue's own reads (a page, the backlog, the latest decisions)."""

    async def fetch() -> object:
        page = await queries.pending_approvals(pool, None, limit)
        return page, await queries.approval_backlog(pool), await queries.decided_approvals(pool, 50)

    return fetch


async def measure(root: str, database_url: str, long_trail: str, missions: int) -> None:
    client = await signed_in(root)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    some = await pool.fetchval("SELECT mission_id FROM missions OFFSET $1 LIMIT 1", missions // 2)
    trail = "SELECT mission_id, sequence, hash, record FROM ledger_events WHERE mission_id = $1"
    pages = [
        ("missions, newest 50", "/console/missions", raw_list(pool)),
        (
            "missions, status filter",
            "/console/missions?status=running",
            raw_list(pool, status="running"),
        ),
        ("missions, text search", f"/console/missions?q={some[:8]}", raw_list(pool, q=some[:8])),
        (
            "missions, stuck > 1 min",
            "/console/missions?stuck_minutes=1",
            raw_list(pool, stuck_minutes=1),
        ),
        ("mission, 5 events", f"/console/missions/{some}", raw(pool, trail, some)),
        ("mission, 200 events", f"/console/missions/{long_trail}", raw(pool, trail, long_trail)),
        ("trail export, 200 events", f"/console/missions/{long_trail}/trail.json", None),
        ("approvals, oldest 50", "/console/approvals", raw_queue(pool, 50)),
        ("approvals, API page of 100", "/approvals", raw_queue(pool, 100)),
        ("health", "/console/health", None),
        ("dashboards", "/console/dashboards", None),
    ]
    print(f"\nconsole pages with {missions} missions ({ROUNDS} fetches each, ms)")
    print(f"{'page':<28}{'p50':>8}{'p95':>8}{'raw p95':>10}{'ratio':>8}")
    try:
        for name, path, raw_path in pages:
            p50, p95 = await timed(page(client, path))
            raw_p95 = (await timed(raw_path))[1] if raw_path else None
            ratio = f"{p95 / raw_p95:8.1f}" if raw_p95 else f"{'':>8}"
            shown = f"{raw_p95:10.2f}" if raw_p95 else f"{'':>10}"
            print(f"{name:<28}{p50:8.1f}{p95:8.1f}{shown}{ratio}", flush=True)
    finally:
        await client.aclose()
        await pool.close()


def main() -> None:
    missions = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    awaiting = int(sys.argv[2]) if len(sys.argv) > 2 else 2_000
    with (
        embedded_infrastructure() as infra,
        running_stack(infra, COLONY_REACTORS="false") as (root, database_url, prefix, _),
    ):
        print(
            f"seeding {missions} missions ({awaiting} awaiting approval) through the decider"
            " and projector …",
            flush=True,
        )
        long_trail = asyncio.run(seed(infra, prefix, database_url, missions, awaiting))
        asyncio.run(measure(root, database_url, long_trail, missions))


if __name__ == "__main__":
    main()
