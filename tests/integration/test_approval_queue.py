"""The approval queue's reads over a real approvals view (projections/queries.py): pages
that follow a cursor, ties in request time, one mission's part, and the briefs the console
shows beside each approval read for a whole page at once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from ledger.commands import FailMission
from projections import queries
from tests.conftest import Isolated
from tests.factories import OPERATOR, command, crm_awaiting_approval
from tests.integration.conftest import command_sender, eventually, ledger_services

pytestmark = pytest.mark.integration
APPROVAL = """
INSERT INTO approvals (writeback_id, mission_id, target, record_ref, changes, rationale,
                       status, requested_at, decided_at)
VALUES ($1, $2, 'crm', 'account:northwind', '{"qualification_score": "82"}', 'fit', $3,
        $4::timestamptz, CASE WHEN $3 = 'pending' THEN NULL ELSE $4 + interval '1 minute' END)
"""
PACKET = """
INSERT INTO reviewer_packets (mission_id, sequence, packet_hash, verdict, output, checks,
                              recorded_at)
VALUES ($1, $2, $3, 'pass', 'fit', '{}', now())
"""


async def test_pages_hold_every_pending_approval_once_oldest_first_ties_included(
    pool: asyncpg.Pool,
) -> None:
    """Approvals requested in the same microsecond (one event can propose several) are
    ordered by id and split across pages without loss or repeat; decided ones stay out."""
    now = datetime.now(UTC)
    same = now - timedelta(minutes=5)
    rows = [
        ("wb-e", "m-1", "pending", same),
        ("wb-c", "m-1", "pending", same),
        ("wb-d", "m-2", "pending", same),
        ("wb-a", "m-3", "pending", now - timedelta(minutes=1)),
        ("wb-b", "m-3", "pending", now - timedelta(minutes=9)),
        ("wb-x", "m-2", "rejected", now - timedelta(minutes=20)),
    ]
    await pool.executemany(APPROVAL, rows)
    seen, cursor, sizes = [], None, []
    while True:
        page, next_cursor = await queries.pending_approvals(pool, cursor, 2)
        seen += [a["approval_id"] for a in page]
        sizes.append(len(page))
        if next_cursor is None:
            break
        cursor = queries.decode_cursor(next_cursor)
    total, oldest_age_s = await queries.approval_backlog(pool)
    assert seen == ["wb-b", "wb-c", "wb-d", "wb-e", "wb-a"]
    assert sizes == [2, 2, 1]
    assert total == 5 and 9 * 60 - 5 < oldest_age_s < 9 * 60 + 60


async def test_one_missions_part_of_the_queue(pool: asyncpg.Pool) -> None:
    now = datetime.now(UTC)
    rows = [
        ("wb-1", "m-1", "pending", now - timedelta(minutes=3)),
        ("wb-2", "m-2", "pending", now - timedelta(minutes=7)),
        ("wb-3", "m-1", "approved", now - timedelta(minutes=9)),
        ("wb-4", "m-2", "rejected", now - timedelta(minutes=8)),
    ]
    await pool.executemany(APPROVAL, rows)
    pending, next_cursor = await queries.pending_approvals(pool, None, 10, "m-1")
    total, oldest_age_s = await queries.approval_backlog(pool, "m-1")
    decided = await queries.decided_approvals(pool, 10, "m-1")
    everyone = await queries.decided_approvals(pool, 10)
    assert [a["approval_id"] for a in pending] == ["wb-1"] and next_cursor is None
    assert total == 1 and 3 * 60 - 5 < oldest_age_s < 3 * 60 + 60
    assert [a["approval_id"] for a in decided] == ["wb-3"]
    assert [a["approval_id"] for a in everyone] == ["wb-4", "wb-3"], "newest decision first"


async def test_the_latest_packet_of_each_mission_with_its_document(pool: asyncpg.Pool) -> None:
    """One query answers for a page of missions: each one's latest packet, its stored
    document if any; missions without a packet are left out."""
    await pool.executemany(
        PACKET, [("m-1", 4, "a" * 64), ("m-1", 9, "b" * 64), ("m-2", 3, "c" * 64)]
    )
    await pool.execute(
        "INSERT INTO artifact_blobs (content_hash, media_type, size_bytes, content, stored_by)"
        " VALUES ($1, 'application/json', 2, '{}', 'test')",
        "b" * 64,
    )
    packets = await queries.latest_packets(pool, ["m-1", "m-2", "m-3"])
    assert {m: p["packet_hash"][0] for m, p in packets.items()} == {"m-1": "b", "m-2": "c"}
    assert packets["m-1"]["content"] == b"{}" and packets["m-2"]["content"] is None


async def test_an_approval_is_withdrawn_when_its_mission_ends_while_it_waits(
    isolated: Isolated, pool: asyncpg.Pool
) -> None:
    """Through the decider and the projector: the mission an operator fails while its
    writeback waits takes the approval out of the queue (nobody could decide it any
    more), saying why; the other mission's approval still waits."""
    waiting, failing = str(uuid.uuid4()), str(uuid.uuid4())
    fail = command(failing, FailMission(reason="lead went cold"), actor=OPERATOR)
    async with ledger_services(isolated), command_sender(isolated) as sender:
        await sender.send(*crm_awaiting_approval(waiting), *crm_awaiting_approval(failing), fail)
        withdrawn = await eventually(lambda: ended_approval(pool, failing))
        pending, _ = await queries.pending_approvals(pool, None, 10)
        total, _ = await queries.approval_backlog(pool)
    assert withdrawn["status"] == "withdrawn"
    assert withdrawn["detail"] == "the mission failed: lead went cold"
    assert [a["mission_id"] for a in pending] == [waiting] and total == 1


async def ended_approval(pool: asyncpg.Pool, mission_id: str) -> dict[str, Any] | None:
    row = await pool.fetchrow(
        "SELECT status, detail FROM approvals WHERE mission_id = $1 AND status <> 'pending'",
        mission_id,
    )
    return dict(row) if row else None
