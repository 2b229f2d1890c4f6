"""The ledger's operator commands: verify chains, replay a mission's history, restore.

Each returns a process exit code; `infra/cli.py` wires them to `velocity ledger ...`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from infra.config import CommonSettings
from infra.kafka import client_options
from infra.progress import Progress
from infra.topics import EVENTS, TopicNames
from ledger.audit import ArchivedRow, BrokenLink, ChainVerifier, check_archived, compare_heads
from ledger.events import RecordedEvent
from ledger.log_reader import read_to_end
from ledger.restore import restore_log
from ledger.state import MissionState, evolve
from ledger.wire import InvalidRecordError, LedgerWire

ARCHIVE_ROWS = """
SELECT mission_id, sequence, hash, record FROM ledger_events
WHERE ($1::text IS NULL OR mission_id = $1) AND topic_offset < ($2::bigint[])[topic_partition + 1]
ORDER BY mission_id, sequence
"""
ARCHIVED_UP_TO = """
SELECT partition, next_offset FROM projector_offsets
WHERE projector = 'event_archive' AND topic = $1
"""


def _say(message: str) -> None:
    print(message, file=sys.stderr)  # noqa: T201


async def verify(
    settings: CommonSettings,
    bootstrap: str,
    database_url: str,
    mission_id: str | None,
    archive_only: bool,
) -> int:
    """Check every chain in the archive, then in the topic, then that both agree.

    Exact on a live system: both are read up to the same offsets, the ones the archive had
    reached when verify began (events decided since are left for the next run)."""
    wire = LedgerWire()
    names = TopicNames(settings.KAFKA_TOPIC_PREFIX)
    connection = await asyncpg.connect(database_url)
    try:
        upto = {
            row["partition"]: row["next_offset"]
            for row in await connection.fetch(ARCHIVED_UP_TO, names.events)
        }
        archive, problems = await _verify_archive(connection, wire, mission_id, upto)
    finally:
        await connection.close()
    findings: list[BrokenLink] = []
    if not archive_only:
        log = ChainVerifier("log", strict=False)
        options = client_options(settings, bootstrap)
        async for event in _log_events(options, names, wire, upto):
            if isinstance(event, BrokenLink):
                findings.extend([event] if mission_id is None else [])
            elif mission_id is None or event.meta.mission_id == mission_id:
                broken = log.check(event)
                if broken:
                    problems.append(broken)
        findings.extend(log.findings)
        problems.extend(compare_heads(archive, log))
    return _report(archive, problems, findings)


async def _verify_archive(
    connection: asyncpg.Connection,
    wire: LedgerWire,
    mission_id: str | None,
    upto: dict[int, int],
) -> tuple[ChainVerifier, list[BrokenLink]]:
    verifier = ChainVerifier("archive")
    problems: list[BrokenLink] = []
    total = await connection.fetchval(
        "SELECT count(*) FROM ledger_events WHERE ($1::text IS NULL OR mission_id = $1)",
        mission_id,
    )
    progress = Progress("verified archive events", total)
    bounds = [upto.get(p, 0) for p in range(EVENTS.partitions)]
    async with connection.transaction():
        async for row in connection.cursor(ARCHIVE_ROWS, mission_id, bounds, prefetch=2_000):
            progress.advance()
            _, broken = check_archived(verifier, wire, ArchivedRow(**dict(row)))
            if broken:
                problems.append(broken)
    progress.finish()
    return verifier, problems


async def _log_events(
    options: dict[str, Any], names: TopicNames, wire: LedgerWire, upto: dict[int, int]
) -> AsyncIterator[RecordedEvent | BrokenLink]:
    """Every record of the events topic below `upto`: an event, or the finding of a record
    that is none."""
    consumer = AIOKafkaConsumer(enable_auto_commit=False, fetch_max_wait_ms=50, **options)
    await consumer.start()
    progress = Progress("verified log events")
    try:
        partitions = [
            TopicPartition(names.events, p) for p in range(EVENTS.partitions) if upto.get(p)
        ]
        async for tp, records in read_to_end(consumer, partitions):
            for item in (r for r in records if r.offset < upto[tp.partition]):
                progress.advance()
                try:
                    yield wire.decode_event(item.value or b"")
                except InvalidRecordError as error:
                    where = f"partition {item.partition} offset {item.offset}"
                    yield BrokenLink("log", "-", 0, f"{where} is not a ledger event: {error}")
    finally:
        progress.finish()
        await consumer.stop()


def _report(archive: ChainVerifier, problems: list[BrokenLink], findings: list[BrokenLink]) -> int:
    missions = len(archive.heads)
    for finding in findings[:20]:
        print(f"note: {finding} (ignored by every reader; see ledger_set_aside)")  # noqa: T201
    if len(findings) > 20:
        print(f"note: … and {len(findings) - 20} more records that are not history")  # noqa: T201
    if not problems:
        print(f"ok: {missions} missions, {archive.checked} events, every chain intact")  # noqa: T201
        return 0
    print(f"BROKEN: first bad link: {problems[0]}")  # noqa: T201
    for problem in problems[1:20]:
        print(f"  also: {problem}")  # noqa: T201
    if len(problems) > 20:
        print(f"  … and {len(problems) - 20} more")  # noqa: T201
    return 1


async def replay(database_url: str, mission_id: str, as_of: datetime | None, as_json: bool) -> int:
    """Print a mission's history from the archive and the state folded as of `as_of`."""
    wire = LedgerWire()
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT record FROM ledger_events WHERE mission_id = $1"
            " AND ($2::timestamptz IS NULL OR occurred_at <= $2) ORDER BY sequence",
            mission_id,
            as_of,
        )
    finally:
        await connection.close()
    if not rows:
        _say(f"velocity: no events for mission {mission_id}" + (f" as of {as_of}" if as_of else ""))
        return 1
    events = [wire.decode_event(row["record"]) for row in rows]
    state = MissionState(mission_id=mission_id)
    for event in events:
        state = evolve(state, event)
    if as_json:
        document = {
            "mission_id": mission_id,
            "as_of": as_of.isoformat() if as_of else None,
            "events": [
                {"meta": e.meta.model_dump(mode="json"), "data": e.body.data()} for e in events
            ],
            "state": state.model_dump(mode="json"),
        }
        print(json.dumps(document, indent=2, sort_keys=True))  # noqa: T201
        return 0
    for event in events:
        meta = event.meta
        data = json.dumps(event.body.data(), sort_keys=True)
        print(  # noqa: T201
            f"{meta.sequence:>5}  {meta.occurred_at.isoformat()}  {meta.event_type:<24}"
            f" {meta.actor:<18} {meta.hash[:12]}  {data[:120]}"
        )
    print(  # noqa: T201
        f"\nstate as of {as_of.isoformat() if as_of else 'now'}: status={state.status}"
        f" stage={state.stage} sequence={state.sequence} tokens={state.tokens_used}"
        f" writebacks={ {k: v.status for k, v in state.writebacks.items()} }"
    )
    return 0


async def restore(settings: CommonSettings, bootstrap: str, database_url: str) -> int:
    """Republish archived events the broker's log lacks."""
    names = TopicNames(settings.KAFKA_TOPIC_PREFIX)
    connection = await asyncpg.connect(database_url)
    progress = Progress("restored events")
    try:
        done = await restore_log(
            client_options(settings, bootstrap),
            names,
            connection,
            progress.reach,
        )
    finally:
        await connection.close()
    progress.finish()
    print(f"restored {done} events into {names.events}")  # noqa: T201
    return 0
