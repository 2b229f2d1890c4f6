"""`velocity deadletters list|redrive`: the records consumers set aside, and sending a
command back once its cause is fixed.

Re-driving sends the letter's original bytes again, keyed by the command's mission id
(so it lands on the mission's partition whatever partitioner first sent it), and records
who re-drove it and when. The bytes carry the original command id, so the ledger applies
the command at most once however often it is re-driven. Only commands are re-driven: the
decider alone writes events, and a metric record has nothing to redo.
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
       failed_at, redriven_at, redriven_by
FROM dead_letters
WHERE ($1 OR redriven_at IS NULL) AND ($2::text IS NULL OR reason = $2)
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
    SELECT letter_id, redriven_at IS NULL AS waited FROM dead_letters
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
"""Marks a letter re-driven; the first time, it no longer counts as waiting."""


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
        _say(
            f"{row['letter_id']}  {row['failed_at'].isoformat()}  {row['consumer']}:"
            f" {row['source_topic']}[{row['source_partition']}]@{row['source_offset']}"
            f"  {row['reason']}: {row['detail']}{done}"
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
