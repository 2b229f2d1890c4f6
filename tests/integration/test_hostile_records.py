"""Hostile records on the topics, written as an outsider would: a plain Kafka producer with
Avro built from schemas_avro/ alone, a librdkafka client with its default partitioner,
garbage bytes, poison events straight onto mission.events. The ledger's promises hold: no
forged approval, a poisoned view parks only its mission, and what is set aside shows on
/readyz and /metrics and is listed and recovered with the `velocity` CLI."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from confluent_kafka import Producer
from fastavro import schemaless_writer
from fastavro.schema import fingerprint, load_schema, to_parsing_canonical_form

from infra.processes import child_environment
from infra.topics import EVENTS, TopicNames, partition_for
from ledger.chain import record
from ledger.codec import AvroCodec
from ledger.commands import ApproveWriteback, Command, StartPlanning
from ledger.dead_letters import DeadLetter, DeadLetters
from ledger.events import MissionRequested, PlanningStarted, RecordedEvent
from ledger.log_reader import fetches_to_end
from ledger.state import MissionState, evolve
from ledger.wire import DeadLetterReason, LedgerWire
from projections.batch import BatchApplier
from projections.dead_letter_view import DeadLettersProjection
from projections.feeds import ledger_feed
from projections.projection import Projected
from schemas_avro import SCHEMA_DIR
from tests.conftest import Isolated
from tests.factories import OPERATOR, command, crm_script, request_body
from tests.integration.conftest import (
    archived,
    command_sender,
    eventually,
    ledger_services,
    prepared,
    root_api,
)

pytestmark = pytest.mark.integration


def outsider_avro(name: str, value: dict[str, Any]) -> bytes:
    """Single-object Avro built from the .avsc file alone, as any Avro tool would."""
    schema = load_schema(str(SCHEMA_DIR / f"{name}.avsc"))
    body = io.BytesIO()
    schemaless_writer(body, schema, value)
    print_ = bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))
    return b"\xc3\x01" + print_ + body.getvalue()


def command_meta(mission_id: str, actor: str, **extra: Any) -> dict[str, Any]:
    return {
        "command_id": str(uuid.uuid4()),
        "mission_id": mission_id,
        "issued_at": datetime.now(UTC),
        "correlation_id": mission_id,
        "trace_id": uuid.uuid4().hex,
        "actor": actor,
        "proof": None,
    } | extra


async def produce(
    slice_: Isolated, topic: str, value: bytes, key: bytes | None, partition: int | None = None
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=slice_.bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key, partition=partition)
    finally:
        await producer.stop()


def velocity(slice_: Isolated, *args: str) -> subprocess.CompletedProcess[str]:
    """The operator CLI, run as an operator runs it, against this test's slice."""
    return subprocess.run(
        [str(Path(sys.executable).with_name("velocity")), *args],
        env=child_environment(**slice_.environment()),
        capture_output=True,
        text=True,
        timeout=120,
    )


async def rows(slice_: Isolated, query: str, *args: Any) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(slice_.database_url)
    try:
        return list(await connection.fetch(query, *args))
    finally:
        await connection.close()


async def with_at_least(probe: Any, count: int) -> Any:
    found = await probe
    return found if len(found) >= count else None


async def test_forged_approvals_on_the_commands_topic_do_not_approve(isolated: Isolated) -> None:
    await prepared(isolated)
    mission_id = str(uuid.uuid4())
    writeback = f"wb-{mission_id}"
    topic = TopicNames(isolated.topic_prefix).commands
    approve = "velocity.commands.ApproveWriteback"
    unsigned = command_meta(mission_id, "operator:anything")
    bogus_proof = command_meta(
        mission_id, OPERATOR, proof={"key_id": "local", "signature": b"\x01" * 64}
    )
    from_colony = command_meta(mission_id, "colony:executor")
    async with ledger_services(isolated), command_sender(isolated) as sender:
        await sender.send(*crm_script(mission_id)[:10])  # up to the proposed writeback
        await eventually(lambda: with_at_least(archived(isolated.database_url, mission_id), 11))
        for meta in (unsigned, bogus_proof, from_colony):
            value = outsider_avro(
                approve, {"meta": meta, "writeback_id": writeback, "reason": "me"}
            )
            await produce(isolated, topic, value, mission_id.encode())
        trail = await eventually(
            lambda: with_at_least(archived(isolated.database_url, mission_id), 14)
        )
        refusals = [(r["event_type"], r["data"]) for r in trail[11:]]
        assert [data for _, data in refusals] and all(t == "CommandRejected" for t, _ in refusals)
        reasons = [r["data"] for r in trail[11:]]
        assert '"operator_unproven"' in reasons[0] and '"operator_unproven"' in reasons[1]
        assert '"operator_required"' in reasons[2]
        pending = await rows(
            isolated, "SELECT status FROM approvals WHERE writeback_id = $1", writeback
        )
        assert pending[0]["status"] == "pending"
        # the forger squatted the id the root would use; the operator's signed command still counts
        genuine = command(
            mission_id,
            ApproveWriteback(writeback_id=writeback, reason="checked"),
            command_id=unsigned["command_id"],
            actor=OPERATOR,
        )
        await sender.send(genuine)
        trail = await eventually(
            lambda: with_at_least(archived(isolated.database_url, mission_id), 15)
        )
    assert trail[14]["event_type"] == "WritebackApproved"
    assert trail[14]["actor"] == OPERATOR
    assert sum(r["event_type"] == "WritebackApproved" for r in trail) == 1


async def test_unstorable_text_sent_raw_is_dead_lettered_and_shows_on_metrics_and_readiness(
    isolated: Isolated,
) -> None:
    await prepared(isolated)
    topics = TopicNames(isolated.topic_prefix)
    poisoned = str(uuid.uuid4())
    fields = request_body(objective="fine").model_dump() | {"objective": "a\x00b"}
    value = outsider_avro(
        "velocity.commands.RequestMission", {"meta": command_meta(poisoned, "service:x"), **fields}
    )
    healthy = str(uuid.uuid4())
    async with ledger_services(isolated), command_sender(isolated) as sender:
        await produce(isolated, topics.commands, value, poisoned.encode())
        await produce(isolated, topics.commands, b"\x00garbage", b"whatever")
        await sender.send(command(healthy, request_body()))
        await eventually(lambda: archived(isolated.database_url, healthy))
        letters = await eventually(
            lambda: with_at_least(
                rows(isolated, "SELECT * FROM dead_letters ORDER BY failed_at"), 2
            )
        )
        async with root_api(isolated, COLONY_ENABLED=False) as client:
            metrics = (await client.get("/metrics")).text
            ready = (await client.get("/readyz")).json()
    assert {letter["reason"] for letter in letters} == {"unstorable_text", "undecodable"}
    assert not await archived(isolated.database_url, poisoned)
    counter = (
        f'velocity_dead_letters_total{{reason="unstorable_text",topic="{topics.commands}"}} 1.0'
    )
    assert counter in metrics
    assert ready["checks"]["dead_letters"]["degraded"] is True
    assert "undecodable 1" in ready["checks"]["dead_letters"]["detail"]
    listed = velocity(isolated, "deadletters", "list")
    assert listed.returncode == 0 and "unstorable_text" in listed.stdout
    refused = velocity(isolated, "deadletters", "redrive", letters[0]["letter_id"])
    assert refused.returncode == 1 and "still not a valid command" in refused.stderr


async def test_a_command_from_librdkafkas_default_partitioner_is_set_aside_and_redriven_once(
    isolated: Isolated,
) -> None:
    await prepared(isolated)
    topics = TopicNames(isolated.topic_prefix)
    mission_id = next(
        m
        for m in (str(uuid.uuid4()) for _ in range(100))
        if partition_for(m.encode(), EVENTS.partitions) != _crc32_partition(m)
    )
    home = partition_for(mission_id.encode(), EVENTS.partitions)
    start = command(mission_id, StartPlanning(planner="p"))
    later = str(uuid.uuid4())
    async with ledger_services(isolated), command_sender(isolated) as sender:
        await sender.send(command(mission_id, request_body()))
        await eventually(lambda: archived(isolated.database_url, mission_id))
        landed = await asyncio.to_thread(_produce_with_librdkafka, isolated, topics.commands, start)
        assert landed != home, "librdkafka should have put it elsewhere"
        letters = await eventually(
            lambda: rows(isolated, "SELECT * FROM dead_letters WHERE reason = 'wrong_partition'")
        )
        await sender.send(command(later, request_body()))
        await eventually(lambda: archived(isolated.database_url, later))
        assert len(await archived(isolated.database_url, mission_id)) == 1
        assert f"lives on partition {home}" in letters[0]["detail"]

        listed = velocity(isolated, "deadletters", "list", "--reason", "wrong_partition")
        assert letters[0]["letter_id"] in listed.stdout
        redriven = velocity(isolated, "deadletters", "redrive", letters[0]["letter_id"])
        assert redriven.returncode == 0, redriven.stderr
        trail = await eventually(
            lambda: with_at_least(archived(isolated.database_url, mission_id), 2)
        )
        twice = velocity(isolated, "deadletters", "redrive", letters[0]["letter_id"])
        assert twice.returncode == 1 and "--again" in twice.stderr
        again = velocity(isolated, "deadletters", "redrive", letters[0]["letter_id"], "--again")
        assert again.returncode == 0
        await sender.send(command(later, StartPlanning(planner="p")))  # a marker after it
        await eventually(lambda: with_at_least(archived(isolated.database_url, later), 2))
        trail = await archived(isolated.database_url, mission_id)
        async with root_api(isolated, COLONY_ENABLED=False) as client:
            ready = (await client.get("/readyz")).json()
            metrics = (await client.get("/metrics")).text
    assert [r["event_type"] for r in trail] == ["MissionRequested", "PlanningStarted"]
    assert {r["topic_partition"] for r in trail} == {home}
    marked = await rows(
        isolated,
        "SELECT redriven_by FROM dead_letters WHERE letter_id = $1",
        letters[0]["letter_id"],
    )
    assert marked[0]["redriven_by"]
    counts = await rows(
        isolated, "SELECT letters, waiting FROM dead_letter_counts WHERE reason = 'wrong_partition'"
    )
    assert [(c["letters"], c["waiting"]) for c in counts] == [(1, 0)], "re-driven twice: once"
    assert ready["checks"]["dead_letters"] == {"ok": True, "degraded": False}
    letters_total = (
        f'velocity_dead_letters_total{{reason="wrong_partition",topic="{topics.commands}"}}'
    )
    assert f"{letters_total} 1.0" in metrics


def letter(
    topic: str, offset: int, reason: DeadLetterReason = "undecodable", original: bytes = b"x"
) -> DeadLetter:
    """A letter about the record at `offset` of `topic`'s partition 0."""
    return DeadLetter(
        source_topic=topic,
        source_partition=0,
        source_offset=offset,
        key=b"k",
        original=original,
        reason=reason,
        detail="set aside",
        consumer="decider",
        failed_at=datetime.now(UTC),
    )


async def store_letters(slice_: Isolated, letters: list[DeadLetter]) -> None:
    """The letters through the dead-letter view's own statements, as its projector would."""
    connection = await asyncpg.connect(slice_.database_url)
    try:
        for item in letters:
            projected = Projected(0, 0, None, b"", item, "k", "DeadLetter")
            for statement, args in DeadLettersProjection().writes(projected):
                assert isinstance(statement, str), "a letter is one statement, no COPY"
                await connection.execute(statement, *args)
    finally:
        await connection.close()


async def test_dead_letters_count_once_and_a_long_list_shows_the_oldest_and_says_how_many(
    isolated: Isolated,
) -> None:
    """/metrics and /readyz read the letters' counts, not the letters (a million letters
    cost each of them ~180 ms): a letter stored again (the dead-letter topic re-read after
    the embedded broker restarted) must not count again. `velocity deadletters list`
    shows the oldest hundred by default and says how many there are."""
    await prepared(isolated)
    letters = [letter("t.mission.commands", offset) for offset in range(3)]
    await store_letters(isolated, [*letters, letters[0]])
    counts = await rows(isolated, "SELECT * FROM dead_letter_counts")
    assert [tuple(row) for row in counts] == [("t.mission.commands", "undecodable", 3, 3)]
    listed = velocity(isolated, "deadletters", "list", "--limit", "2")
    assert listed.returncode == 0, listed.stderr
    assert [line.split("@")[1][:2] for line in listed.stdout.splitlines()] == ["0 ", "1 "]
    assert "the oldest 2 of 3 letters shown" in listed.stderr
    narrowed = velocity(isolated, "deadletters", "list", "--limit", "1", "--reason", "undecodable")
    assert "the oldest 1 of 3 undecodable letters shown (--limit 0: all)" in narrowed.stderr
    everything = velocity(isolated, "deadletters", "list", "--limit", "0", "--json")
    assert len(json.loads(everything.stdout)) == 3 and not everything.stderr


async def test_letters_that_must_not_be_sent_again_are_dismissed_with_who_and_why(
    isolated: Isolated,
) -> None:
    """An operator dismisses letters after looking (named, or every one of a reason): they
    stop waiting, so readiness is no longer degraded, and stay listed with who, when and
    why; a dismissed letter re-driven later does not count off the waiting twice; an
    unknown id dismisses nothing."""
    await prepared(isolated)
    topics = TopicNames(isolated.topic_prefix)
    misrouted = LedgerWire().encode_command(command(str(uuid.uuid4()), request_body())).value
    letters = [letter(topics.events, offset) for offset in range(3)]
    letters += [letter(topics.events, offset, "history_full") for offset in (3, 4)]
    letters += [letter(topics.commands, 5, "wrong_partition", misrouted)]
    await store_letters(isolated, letters)
    ids = [row["letter_id"] for row in await rows(isolated, LETTER_IDS)]
    unknown = velocity(isolated, "deadletters", "dismiss", ids[0], "nope", "--reason", "x")
    one = velocity(isolated, "deadletters", "dismiss", ids[0], "--reason", "seen: garbage")
    rest = velocity(
        isolated, "deadletters", "dismiss", "--every", "undecodable", "--reason", "a test"
    )
    command_letter = velocity(isolated, "deadletters", "dismiss", ids[5], "--reason", "later")
    redriven = velocity(isolated, "deadletters", "redrive", ids[5])
    waiting = velocity(isolated, "deadletters", "list")
    everything = velocity(isolated, "deadletters", "list", "--all")
    async with root_api(isolated, COLONY_ENABLED=False) as client:
        ready = (await client.get("/readyz")).json()["checks"]["dead_letters"]
    counts = await rows(isolated, "SELECT reason, letters, waiting FROM dead_letter_counts")
    assert unknown.returncode == 1 and "no dead letter nope" in unknown.stderr
    assert one.returncode == 0 and "dismissed 1 waiting letter " in one.stdout
    assert rest.returncode == 0 and "dismissed 2 waiting letters" in rest.stdout
    assert command_letter.returncode == redriven.returncode == 0, redriven.stderr
    assert sorted((r["reason"], r["letters"], r["waiting"]) for r in counts) == [
        ("history_full", 2, 2),
        ("undecodable", 3, 0),
        ("wrong_partition", 1, 0),
    ], "a dismissed letter re-driven is not taken off the waiting twice"
    assert "undecodable" not in waiting.stdout and waiting.stdout.count("history_full") == 2
    assert everything.stdout.count("; dismissed ") == 4
    assert ": seen: garbage" in everything.stdout
    assert "undecodable" not in ready["detail"] and "history_full 2" in ready["detail"]


LETTER_IDS = "SELECT letter_id FROM dead_letters ORDER BY source_offset"


async def test_a_forged_letter_about_another_topic_or_reason_is_itself_set_aside(
    isolated: Isolated,
) -> None:
    """The colony writes the dead-letter topic (it sets events aside) and must be assumed
    capable of anything its credentials allow: letters naming topics this ledger does not
    have, or reasons it never gives, would each add a row to the letters' counts and a
    series to every /metrics scrape. Such a letter becomes a letter about itself
    (`invalid_dead_letter`, naming the field); the counts keep to known topics."""
    await prepared(isolated)
    topics = TopicNames(isolated.topic_prefix)
    forged = {
        "source_topic": topics.commands,
        "source_partition": 0,
        "source_offset": 1,
        "key": None,
        "original": b"x",
        "reason": "undecodable",
        "detail": "forged",
        "consumer": "colony",
        "failed_at": datetime.now(UTC),
    }
    records = [
        outsider_avro("velocity.DeadLetter", forged | {"source_topic": f"invented-{i}"})
        for i in range(3)
    ]
    records.append(outsider_avro("velocity.DeadLetter", forged | {"reason": "made_up"}))
    producer = AIOKafkaProducer(bootstrap_servers=isolated.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for value in records:
            await producer.send_and_wait(topics.dead_letters, value, partition=0)
    finally:
        await producer.stop()
    about_letters = "SELECT * FROM dead_letters WHERE source_topic = $1"
    async with ledger_services(isolated, with_decider=False):
        await eventually(
            lambda: with_at_least(rows(isolated, about_letters, topics.dead_letters), 4)
        )
        counts = await rows(isolated, "SELECT * FROM dead_letter_counts")
        details = await rows(isolated, "SELECT detail FROM dead_letters ORDER BY source_offset")
    assert [(c["source_topic"], c["reason"], c["letters"]) for c in counts] == [
        (topics.dead_letters, "invalid_dead_letter", 4)
    ]
    assert [d["detail"][:12] for d in details] == ["source_topic"] * 3 + ["reason: Inpu"]


def _crc32_partition(key: str) -> int:
    """Where librdkafka's default (consistent_random) partitioner puts a keyed record."""
    import zlib

    return zlib.crc32(key.encode()) % EVENTS.partitions


def _produce_with_librdkafka(slice_: Isolated, topic: str, item: Command) -> int:
    landed: list[int | None] = []
    producer = Producer({"bootstrap.servers": slice_.bootstrap_servers, "acks": "all"})
    wire = LedgerWire().encode_command(item)
    producer.produce(
        topic, wire.value, key=wire.key, on_delivery=lambda err, msg: landed.append(msg.partition())
    )
    assert producer.flush(30) == 0
    assert landed[0] is not None
    return landed[0]


def poison(mission_id: str, objective: str = "a\x00b") -> list[RecordedEvent]:
    """Two chained events for a new mission whose objective PostgreSQL cannot store (by
    default: any other `objective` makes a healthy pair)."""
    state = MissionState(mission_id=mission_id)
    fields = request_body().model_dump() | {"objective": objective}
    first = record(
        state, command(mission_id, request_body()), [MissionRequested(**fields)], datetime.now(UTC)
    )
    second = record(
        evolve(state, first[0]),
        command(mission_id, StartPlanning(planner="p")),
        [PlanningStarted(planner="p")],
        datetime.now(UTC),
    )
    return first + second


async def write_events(slice_: Isolated, events: list[RecordedEvent]) -> None:
    topic = TopicNames(slice_.topic_prefix).events
    wire = LedgerWire()
    for event in events:
        out = wire.encode_event(event)
        partition = partition_for(out.key, EVENTS.partitions)
        await produce(slice_, topic, out.value, out.key, partition)


async def test_a_poison_event_parks_only_its_mission_and_an_operator_evicts_it(
    isolated: Isolated,
) -> None:
    await prepared(isolated)
    poisoned, healthy = str(uuid.uuid4()), str(uuid.uuid4())
    async with ledger_services(isolated), command_sender(isolated) as sender:
        await write_events(isolated, poison(poisoned))
        await sender.send(*crm_script(healthy))
        await eventually(
            lambda: with_at_least(
                rows(
                    isolated,
                    "SELECT * FROM missions WHERE mission_id = $1 AND status = 'completed'",
                    healthy,
                ),
                1,
            )
        )
        parked = await eventually(
            lambda: with_at_least(
                rows(isolated, "SELECT * FROM projection_parked ORDER BY topic_offset"), 2
            )
        )
        async with root_api(isolated, COLONY_ENABLED=False) as client:
            metrics = (await client.get("/metrics")).text
            ready = (await client.get("/readyz")).json()
        archive = await archived(isolated.database_url, poisoned)
        listed = velocity(isolated, "projections", "parked")
        evicted = velocity(
            isolated,
            "projections",
            "evict",
            "missions",
            "--mission",
            poisoned,
            "--reason",
            "test poison",
        )
        left = await rows(isolated, "SELECT * FROM projection_parked")
        audit = await rows(isolated, "SELECT * FROM projection_evictions")
        async with root_api(isolated, COLONY_ENABLED=False) as client:
            after = (await client.get("/readyz")).json()
    assert [(p["projection"], p["parking_key"], p["event_type"]) for p in parked] == [
        ("missions", poisoned, "MissionRequested"),
        ("missions", poisoned, "PlanningStarted"),
    ]
    assert "CharacterNotInRepertoire" in parked[0]["error"] and parked[1]["error"] is None
    assert [e["data_exact"] for e in archive] == [False, True], "the archive keeps every event"
    assert 'velocity_projection_parked_events{projection="missions"} 2.0' in metrics
    assert ready["checks"]["projections"]["degraded"] is True
    assert "missions: 2 event(s) of 1 mission(s) parked" in ready["checks"]["projections"]["detail"]
    assert poisoned in listed.stdout and "MissionRequested" in listed.stdout
    assert evicted.returncode == 0, evicted.stdout + evicted.stderr
    assert not left
    assert audit[0]["reason"] == "test poison" and audit[0]["evicted_by"]
    assert "projections" not in after["degraded"]


def mission_on_another_partition(than: str) -> str:
    while True:
        other = str(uuid.uuid4())
        if partition_for(other.encode(), EVENTS.partitions) != partition_for(
            than.encode(), EVENTS.partitions
        ):
            return other


async def test_a_fetch_of_several_partitions_parks_the_poison_and_applies_the_rest(
    isolated: Isolated,
) -> None:
    """One transaction per fetch: when one partition's record cannot be applied, the
    fetch is applied again partition by partition, and only the culprit's mission waits."""
    await prepared(isolated)
    poisoned = str(uuid.uuid4())
    healthy = mission_on_another_partition(poisoned)
    await write_events(isolated, poison(poisoned) + poison(healthy, "a fine objective"))
    topic = TopicNames(isolated.topic_prefix).events
    consumer = AIOKafkaConsumer(bootstrap_servers=isolated.bootstrap_servers)
    await consumer.start()
    fetch: dict[TopicPartition, list[ConsumerRecord]] = {}
    try:
        partitions = [TopicPartition(topic, p) for p in range(EVENTS.partitions)]
        async for batches in fetches_to_end(consumer, partitions):
            for tp, records in batches.items():
                fetch.setdefault(tp, []).extend(records)
    finally:
        await consumer.stop()
    pool = await asyncpg.create_pool(isolated.database_url, min_size=1, max_size=2)
    producer = AIOKafkaProducer(bootstrap_servers=isolated.bootstrap_servers)
    await producer.start()
    try:
        letters = TopicNames(isolated.topic_prefix).dead_letters
        dead = DeadLetters(producer, letters, AvroCodec(), "t")
        applier = BatchApplier(pool, ledger_feed(), dead)
        seek = await applier.apply_fetch(fetch)
    finally:
        await producer.stop()
        await pool.close()
    missions = await rows(isolated, "SELECT mission_id, status FROM missions")
    parked = await rows(isolated, "SELECT parking_key FROM projection_parked")
    stored = await rows(
        isolated,
        "SELECT partition, next_offset FROM projector_offsets WHERE projector = 'missions'",
    )
    assert len(fetch) == 2 and seek == {tp: None for tp in fetch}
    assert [(m["mission_id"], m["status"]) for m in missions] == [(healthy, "planning")]
    assert {p["parking_key"] for p in parked} == {poisoned}
    assert len(await archived(isolated.database_url, poisoned)) == 2
    assert {row["partition"]: row["next_offset"] for row in stored} == {
        tp.partition: records[-1].offset + 1 for tp, records in fetch.items()
    }


async def test_parked_events_apply_in_order_once_the_cause_is_fixed(isolated: Isolated) -> None:
    await prepared(isolated)
    connection = await asyncpg.connect(isolated.database_url)
    try:
        await connection.execute(
            "ALTER TABLE tasks ADD CONSTRAINT refuses_research CHECK (description <> 'accounts')"
        )
        blocked, other = str(uuid.uuid4()), str(uuid.uuid4())
        async with ledger_services(isolated), command_sender(isolated) as sender:
            await sender.send(*crm_script(blocked)[:5])  # planned, started, tool decision
            await eventually(
                lambda: with_at_least(rows(isolated, "SELECT * FROM projection_parked"), 2)
            )
            await sender.send(command(other, request_body()))
            await eventually(
                lambda: rows(isolated, "SELECT 1 FROM missions WHERE mission_id = $1", other)
            )
            still = velocity(isolated, "projections", "retry")
            await connection.execute("ALTER TABLE tasks DROP CONSTRAINT refuses_research")
            fixed = velocity(isolated, "projections", "retry", "tasks", "--mission", blocked)
            tasks = await rows(isolated, "SELECT status FROM tasks WHERE mission_id = $1", blocked)
            left = await rows(isolated, "SELECT * FROM projection_parked")
    finally:
        await connection.close()
    assert still.returncode == 1 and "still failing" in still.stdout
    # plan and start: the tool decision is no event of the tasks view, so it never waited
    assert fixed.returncode == 0 and "2 applied" in fixed.stdout
    assert [t["status"] for t in tasks] == ["running"], "the start waited behind the plan"
    assert not left


async def test_a_rebuild_is_strict_and_says_where_it_stopped(isolated: Isolated) -> None:
    await prepared(isolated)
    poisoned = str(uuid.uuid4())
    async with ledger_services(isolated):
        await write_events(isolated, poison(poisoned))
        await eventually(
            lambda: with_at_least(rows(isolated, "SELECT * FROM projection_parked"), 2)
        )
    rebuilt = velocity(isolated, "projections", "rebuild", "missions")
    home = partition_for(poisoned.encode(), EVENTS.partitions)
    assert rebuilt.returncode == 1, rebuilt.stdout + rebuilt.stderr
    assert "rebuild stopped: missions cannot apply MissionRequested #1" in rebuilt.stderr
    assert f"of {poisoned} at partition {home} offset 0" in rebuilt.stderr
    assert "Traceback" not in rebuilt.stderr
