"""The writeback executor's target: the local CRM table, guarded by the writeback id so an
approved change is applied exactly once however often the executor runs."""

from __future__ import annotations

import json

import asyncpg

ALLOWED_FIELDS = frozenset({"qualification_score", "next_step"})


async def apply_writeback(
    pool: asyncpg.Pool, writeback_id: str, account_id: str, changes: dict[str, str]
) -> str:
    """Apply `changes` once; a repeat with the same writeback id changes nothing."""
    unknown = set(changes) - ALLOWED_FIELDS
    if unknown:
        raise ValueError(f"fields not writable: {sorted(unknown)}")
    async with pool.acquire() as connection, connection.transaction():
        inserted = await connection.fetchval(
            "INSERT INTO crm_writebacks (writeback_id, account_id, changes)"
            " VALUES ($1, $2, $3::jsonb)"
            " ON CONFLICT (writeback_id) DO NOTHING RETURNING writeback_id",
            writeback_id,
            account_id,
            json.dumps(changes),
        )
        if inserted is None:
            return f"already applied to {account_id}"
        assignments = ", ".join(f"{field} = ${i + 2}" for i, field in enumerate(sorted(changes)))
        await connection.execute(
            f"UPDATE crm_accounts SET {assignments}, updated_at = now() WHERE account_id = $1",
            account_id,
            *[changes[field] for field in sorted(changes)],
        )
    return f"applied to {account_id}: {', '.join(sorted(changes))}"


def qualify(employees: int, notes: str) -> dict[str, str]:
    """A qualification score and next step from the account's size and notes. Pure."""
    text = notes.lower()
    score = 40 + min(employees, 1_000) // 20
    score += 15 if "demo" in text else 0
    score += 10 if "budget owner" in text else 0
    score -= 25 if "no budget" in text or "chose not to buy" in text else 0
    score = max(0, min(score, 100))
    step = "book a demo with the budget owner" if score >= 60 else "nurture: send a case study"
    return {"qualification_score": str(score), "next_step": step}
