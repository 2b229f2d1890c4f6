"""A colony taking a partition folds only the missions still open at its stored offset,
and ends up knowing exactly what folding the whole history would have told it."""

from __future__ import annotations

import random

from aiokafka import ConsumerRecord
from hypothesis import given, settings
from hypothesis import strategies as st

from colony_consumers.colony import Colony
from colony_consumers.open_histories import OpenHistories
from colony_consumers.settings import ColonySettings
from ledger.commands import CancelMission, CommandBody, FailMission
from ledger.events import RecordedEvent
from ledger.wire import LedgerWire, record_headers
from tests.factories import mission_history

WIRE = LedgerWire()


def consumer_record(offset: int, key: bytes, value: bytes, event_type: str) -> ConsumerRecord:
    headers = record_headers("event_type", event_type, key.decode(), "0" * 32)
    return ConsumerRecord(
        "mission.events", 0, offset, 0, 0, key, value, None, len(key), len(value), headers
    )


def interleaved(histories: list[list[RecordedEvent]], seed: int) -> list[ConsumerRecord]:
    """The missions' events in one partition, each mission's in order, mixed at random."""
    rng, queues = random.Random(seed), [list(h) for h in histories if h]
    out: list[ConsumerRecord] = []
    while queues:
        queue = rng.choice(queues)
        event = queue.pop(0)
        encoded = WIRE.encode_event(event)
        out.append(consumer_record(len(out), encoded.key, encoded.value, event.event_type))
        if not queue:
            queues.remove(queue)
    return out


def colony() -> Colony:
    return Colony(ColonySettings(), {"bootstrap_servers": "127.0.0.1:1"}, None, None, None, None)  # type: ignore[arg-type]


def folded_whole(records: list[ConsumerRecord]) -> Colony:
    """What the colony knew when it folded every event of the partition."""
    reactor = colony()
    for record in records:
        try:
            event = WIRE.decode_event(record.value)
        except Exception:
            continue
        file = reactor.fold(event)
        if file is not None:
            reactor.settle(file)
    return reactor


def folded_open(records: list[ConsumerRecord]) -> tuple[Colony, OpenHistories]:
    history = OpenHistories(WIRE.event_position)
    for record in records:
        history.add(record)
    reactor = colony()
    reactor.fold_open(history, 0)
    return reactor, history


def known(reactor: Colony) -> dict[str, tuple[int, str, str]]:
    return {
        m: (f.state.sequence, f.state.last_hash, f.state.status) for m, f in reactor.files.items()
    }


ENDINGS = st.sampled_from([None, None, FailMission(reason="stop"), CancelMission(reason="no")])


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), ENDINGS), min_size=1, max_size=8),
    st.integers(0, 2**16),
)
def test_folding_the_open_missions_knows_what_folding_everything_knew(
    missions: list[tuple[int, CommandBody | None]], seed: int
) -> None:
    histories = [
        mission_history(f"m-{i}", uses, ending) for i, (uses, ending) in enumerate(missions)
    ]
    records = interleaved(histories, seed)
    whole = folded_whole(records)
    reactor, history = folded_open(records)
    assert known(reactor) == known(whole)
    assert set(reactor.ended) == set(whole.ended)
    assert len(reactor.files) == sum(1 for _, ending in missions if ending is None)
    still_open = [h for h, (_, ending) in zip(histories, missions, strict=True) if ending is None]
    assert len(history.records()) == sum(len(h) for h in still_open), "ended ones not kept"


def test_a_forged_ending_header_does_not_hide_a_live_mission() -> None:
    """A record claiming to end a mission (its header says MissionCompleted, its body is
    no event, or another mission's ending) leaves the mission folded and worked."""
    live = mission_history("m-live", 2)
    other = mission_history("m-other", 0, FailMission(reason="stop"))
    records = interleaved([live], 1)
    forged_value = WIRE.encode_event(other[1]).value  # a real ending, of another mission
    records.append(consumer_record(len(records), b"m-live", b"garbage", "MissionCompleted"))
    records.append(consumer_record(len(records), b"m-live", forged_value, "MissionFailed"))
    reactor, history = folded_open(records)
    assert history.ended() == []
    assert reactor.files["m-live"].state.sequence == 3
    assert reactor.files["m-live"].state.status == "requested"


def test_an_ending_after_a_duplicate_keeps_the_mission_and_the_fold_settles_it() -> None:
    """A record repeated in the log (a retried send) shifts the count: the ending is not
    trusted, so the mission is folded, and the fold itself ends it."""
    events = mission_history("m-dup", 1, CancelMission(reason="no"))
    records = interleaved([events[:1]], 1)
    records.append(consumer_record(1, records[0].key, records[0].value, "MissionRequested"))
    for event in events[1:]:
        encoded = WIRE.encode_event(event)
        records.append(consumer_record(len(records), encoded.key, encoded.value, event.event_type))
    reactor, history = folded_open(records)
    assert history.ended() == []
    assert "m-dup" not in reactor.files
    assert "m-dup" in reactor.ended
