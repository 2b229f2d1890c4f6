"""`velocity projections parked|retry|evict`: what the views could not apply, and repair.

Each returns a process exit code; `infra/cli.py` wires them. Listing and retrying need
only PostgreSQL; parked events carry their original bytes.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import asyncpg

from infra.topics import TopicNames
from projections.feeds import Feed, all_feeds
from projections.parking import RetryOutcome, evict_head, retry, summary
from projections.projection import Projected, Projection, Unusable
from projections.settings import ProjectorSettings

SET_ASIDE = """
SELECT topic_partition, topic_offset, mission_id, reason, detail, set_aside_at
FROM ledger_set_aside ORDER BY set_aside_at
"""


class UnknownProjectionError(ValueError):
    """A projection name no feed has; the message lists the names."""


def find(name: str, settings: ProjectorSettings) -> tuple[Feed[Any], Projection[Any]]:
    """The feed and projection called `name`, configured as the projector configures them
    (a retry applies parked records as it would)."""
    feeds = all_feeds(settings)
    for feed in feeds:
        for projection in feed.projections:
            if projection.name == name:
                return feed, projection
    names = ", ".join(p.name for feed in feeds for p in feed.projections)
    raise UnknownProjectionError(f"no projection {name!r}; choose from: {names}")


def _say(message: str) -> None:
    print(message)  # noqa: T201


async def parked(database_url: str, projection: str | None, as_json: bool) -> int:
    """List parked (projection, mission) groups and the archive's set-aside records."""
    connection = await asyncpg.connect(database_url)
    try:
        groups = await summary(connection, projection)
        aside = [dict(row) for row in await connection.fetch(SET_ASIDE)] if not projection else []
    finally:
        await connection.close()
    if as_json:
        document = {"parked": groups, "set_aside": aside}
        _say(json.dumps(document, default=str, indent=2, sort_keys=True))
        return 0
    if not groups and not aside:
        _say("nothing parked: every view is whole")
        return 0
    for group in groups:
        state = group["error"] or "waiting"
        _say(
            f"{group['projection']:<14} mission {group['parking_key']}: {group['events']} event(s)"
            f" parked since {group['since'].isoformat()}; first {group['first_event']}"
            f" #{group['first_sequence']} (partition {group['partition']} offset"
            f" {group['first_offset']}, {group['attempts']} attempt(s)): {state}"
        )
    for record in aside:
        _say(
            f"{'event_archive':<14} set aside partition {record['topic_partition']} offset"
            f" {record['topic_offset']} (mission {record['mission_id'] or '?'}):"
            f" {record['reason']}: {record['detail']}"
        )
    return 0


def _decoder(feed: Feed[Any]) -> Any:
    def decode(row: asyncpg.Record) -> Projected[Any]:
        item = feed.project(row["partition"], row["topic_offset"], row["record"], None)
        if isinstance(item, Unusable):
            raise ValueError(f"offset {row['topic_offset']} no longer decodes: {item.detail}")
        return item

    return decode


async def retry_parked(
    settings: ProjectorSettings, database_url: str, projection: str | None, mission: str | None
) -> int:
    """Re-apply parked events in order; exit 1 if any still fail."""
    names = TopicNames(settings.KAFKA_TOPIC_PREFIX)
    connection = await asyncpg.connect(database_url)
    outcomes: list[RetryOutcome] = []
    try:
        for group in await summary(connection, projection, mission):
            feed, view = find(group["projection"], settings)
            if group["topic"] != names.of(feed.topic):
                continue
            outcomes.append(
                await retry(connection, view, group["topic"], group["parking_key"], _decoder(feed))
            )
    finally:
        await connection.close()
    for outcome in outcomes:
        result = "all applied" if outcome.error is None else f"still failing: {outcome.error}"
        _say(
            f"{outcome.projection} mission {outcome.key}: {outcome.applied} applied,"
            f" {outcome.still_parked} still parked; {result}"
        )
    if not outcomes:
        _say("nothing parked to retry")
    return 1 if any(outcome.error for outcome in outcomes) else 0


async def evict(
    settings: ProjectorSettings,
    database_url: str,
    projection: str,
    mission: str,
    operator: str,
    reason: str,
) -> int:
    """Drop a mission's first parked event from one view (audited), then retry the rest."""
    feed, _ = find(projection, settings)
    topic = TopicNames(settings.KAFKA_TOPIC_PREFIX).of(feed.topic)
    connection = await asyncpg.connect(database_url)
    try:
        head = await evict_head(connection, projection, topic, mission, operator, reason)
    finally:
        await connection.close()
    if head is None:
        print(f"velocity: nothing parked for {projection} mission {mission}", file=sys.stderr)  # noqa: T201
        return 1
    _say(
        f"evicted {head['event_type']} #{head['sequence']} (partition {head['partition']} offset"
        f" {head['topic_offset']}) from {projection} for mission {mission}, by {operator}:"
        f" {reason}"
    )
    return await retry_parked(settings, database_url, projection, mission)
