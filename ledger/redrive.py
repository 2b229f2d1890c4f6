"""`velocity deadletters list|redrive|dismiss`: the records consumers set aside, sending a
command back once its cause is fixed, and dismissing what must not be sent back.

Re-driving sends the letter's original bytes again, keyed by the command's mission id
(so it lands on the mission's partition whatever partitioner first sent it), and records
who re-drove it and when. The bytes carry the original command id, so the ledger applies
the command at most once however often it is re-driven. Only commands are re-driven: the
decider alone writes events, and a metric record has nothing to redo. Those, and commands
that are still invalid or about a mission whose history is full, are dismissed instead
once an operator has looked: kept, with who, when and why, no longer waiting.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from infra.config import CommonSettings
from infra.kafka import client_options
from infra.topics import TopicNames
from ledger.wire import InvalidRecordError, LedgerWire

LIST = """
SELECT letter_id, source_topic, source_partition, source_offset, reason, detail, consumer,
       failed_at, redriven_at, redriven_by, dismissed_at, dismissed_by, dismiss_reason
FROM dead_letters
WHERE ($1 OR (redriven_at IS NULL AND dismissed_at IS NULL))
  AND ($2::text IS NULL OR reason = $2)
ORDER BY failed_at
LIMIT $3
"""
MATCHING = """
SELECT coalesce(sum(CASE WHEN $1 THEN letters ELSE waiting END), 0) FROM dead_letter_counts
WHERE $2::text IS NULL OR reason = $2
"""
"""How many letters LIST would show without its limit, from the counts (not the letters)."""
MARK = """
WITH letter AS (
    SELECT letter_id, redriven_at IS NULL AND dismissed_at IS NULL AS waited FROM dead_letters
    WHERE letter_id = $1 FOR UPDATE
), marked AS (
    UPDATE dead_letters SET redriven_at = now(), redriven_by = $2, redrive_reason = $3
    FROM letter WHERE dead_letters.letter_id = letter.letter_id
    RETURNING source_topic, reason, letter.waited
)
UPDATE dead_letter_counts SET waiting = waiting - 1
FROM marked
WHERE marked.waited AND dead_letter_counts.source_topic = marked.source_topic
  AND dead_letter_counts.reason = marked.reason
"""
"""Marks a letter re-driven; if it was waiting, it no longer counts as waiting."""
DISMISS = """
WITH letters AS (
    SELECT letter_id FROM dead_letters
    WHERE (letter_id = ANY($1::text[]) OR reason = $2)
      AND redriven_at IS NULL AND dismissed_at IS NULL
    FOR UPDATE
), marked AS (
    UPDATE dead_letters SET dismissed_at = now(), dismissed_by = $3, dismiss_reason = $4
    FROM letters WHERE dead_letters.letter_id = letters.letter_id
    RETURNING dead_letters.source_topic, dead_letters.reason
), counted AS (
    SELECT source_topic, reason, count(*) AS n FROM marked GROUP BY source_topic, reason
), uncounted AS (
    UPDATE dead_letter_counts SET waiting = waiting - counted.n
    FROM counted
    WHERE dead_letter_counts.source_topic = counted.source_topic
      AND dead_letter_counts.reason = counted.reason
)
SELECT coalesce(sum(n), 0)::bigint FROM counted
"""
"""Dismisses the waiting letters named, or all of a reason, in one statement; how many."""


def _say(message: str) -> None:
    print(message)  # noqa: T201


def _refuse(message: str) -> int:
    print(f"velocity: {message}", file=sys.stderr)  # noqa: T201
    return 1


async def list_letters(
    database_url: str, include_redriven: bool, reason: str | None, as_json: bool, limit: int
) -> int:
    """Print the oldest `limit` dead letters (all for 0), those not yet re-driven unless
    `include_redriven`; when there are more, say how many (a producer with the wrong
    partitioner leaves a letter a command: an unbounded list would be thousands of lines)."""
    connection = await asyncpg.connect(database_url)
    try:
        found = await connection.fetch(LIST, include_redriven, reason, limit or None)
        rows = [dict(row) for row in found]
        matching = await connection.fetchval(MATCHING, include_redriven, reason)
    finally:
        await connection.close()
    if limit and matching > len(rows):
        which = f"{reason} letters" if reason else "letters"
        hint = "--limit 0: all" if reason else "--limit 0: all; --reason narrows"
        print(  # noqa: T201
            f"velocity: the oldest {len(rows):,} of {matching:,} {which} shown ({hint})",
            file=sys.stderr,
        )
    if as_json:
        _say(json.dumps(rows, default=str, indent=2, sort_keys=True))
        return 0
    if not rows:
        _say("no dead letters" + ("" if include_redriven else " waiting for a re-drive"))
        return 0
    for row in rows:
        done = (
            f"; re-driven {row['redriven_at'].isoformat()} by {row['redriven_by']}"
            if row["redriven_at"]
            else ""
        )
        if row["dismissed_at"]:
            done += (
                f"; dismissed {row['dismissed_at'].isoformat()} by {row['dismissed_by']}:"
                f" {row['dismiss_reason']}"
            )
        _say(
            f"{row['letter_id']}  {row['failed_at'].isoformat()}  {row['consumer']}:"
            f" {row['source_topic']}[{row['source_partition']}]@{row['source_offset']}"
            f"  {row['reason']}: {row['detail']}{done}"
        )
    return 0


async def dismiss(
    database_url: str, letter_ids: list[str], every: str | None, operator: str, reason: str
) -> int:
    """Dismiss the letters named and, with `every`, every waiting letter of that reason;
    exit 1, dismissing nothing, when a named letter does not exist."""
    connection = await asyncpg.connect(database_url)
    try:
        known = await connection.fetch(
            "SELECT letter_id FROM dead_letters WHERE letter_id = ANY($1::text[])", letter_ids
        )
        missing = sorted(set(letter_ids) - {row["letter_id"] for row in known})
        if missing:
            return _refuse(
                f"no dead letter {', '.join(missing)} (see `velocity deadletters list`);"
                " nothing dismissed"
            )
        dismissed = await connection.fetchval(DISMISS, letter_ids, every, operator, reason)
    finally:
        await connection.close()
    _say(
        f"dismissed {dismissed:,} waiting letter{'' if dismissed == 1 else 's'}"
        f" (kept, with who and why: `velocity deadletters list --all`)"
    )
    return 0


async def redrive(
    settings: CommonSettings,
    bootstrap: str,
    database_url: str,
    letter_id: str,
    operator: str,
    reason: str,
    again: bool,
) -> int:
    """Send a dead-lettered command again; exit 1 with the reason when it cannot be."""
    names = TopicNames(settings.KAFKA_TOPIC_PREFIX)
    connection = await asyncpg.connect(database_url)
    try:
        letter = await connection.fetchrow(
            "SELECT * FROM dead_letters WHERE letter_id = $1", letter_id
        )
        if letter is None:
            return _refuse(f"no dead letter {letter_id} (see `velocity deadletters list`)")
        refusal = _why_not(dict(letter), names.commands, again)
        if refusal is not None:
            return _refuse(refusal)
        command = LedgerWire().decode_command(letter["original"])
        await _send(
            client_options(settings, bootstrap),
            names.commands,
            letter["original"],
            command.meta.mission_id,
        )
        await connection.execute(MARK, letter_id, operator, reason)
    finally:
        await connection.close()
    _say(
        f"re-drove {command.command_type} {command.meta.command_id} of mission"
        f" {command.meta.mission_id} to {names.commands}; the ledger applies it at most once"
    )
    return 0


def _why_not(letter: dict[str, Any], commands_topic: str, again: bool) -> str | None:
    """Why this letter cannot be re-driven now, or None."""
    if letter["source_topic"] != commands_topic:
        return (
            f"{letter['letter_id']} came from {letter['source_topic']}; only commands are"
            " re-driven (events are written by the decider alone)"
        )
    if letter["redriven_at"] is not None and not again:
        return (
            f"{letter['letter_id']} was re-driven {letter['redriven_at'].isoformat()} by"
            f" {letter['redriven_by']}; pass --again to send it once more (harmless: the"
            " ledger applies a command id once)"
        )
    try:
        LedgerWire().decode_command(letter["original"])
    except InvalidRecordError as error:
        return (
            f"{letter['letter_id']} is still not a valid command ({error}); fix the producer"
            " and send a corrected command instead"
        )
    return None


async def _send(options: dict[str, Any], topic: str, value: bytes, mission_id: str) -> None:
    producer = AIOKafkaProducer(acks="all", **options)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=mission_id.encode())
    finally:
        await producer.stop()
