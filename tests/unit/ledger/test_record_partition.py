"""A command or event record names its mission's partition: the one any Kafka client's
default partitioner gives its key, so producers may pass it instead of hashing."""

from __future__ import annotations

from datetime import UTC, datetime

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from infra.topics import COMMANDS, EVENTS
from ledger.commands import Command, CommandMeta, RecordBudgetUse
from ledger.wire import LedgerWire, misrouted

mission_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,60}", fullmatch=True)
ALL = list(range(COMMANDS.partitions))


@given(mission_ids)
def test_a_commands_partition_is_the_default_partitioners(mission_id: str) -> None:
    meta = CommandMeta(
        command_id="c1",
        mission_id=mission_id,
        issued_at=datetime.now(UTC),
        correlation_id=mission_id,
        trace_id="0" * 32,
        actor="planner",
    )
    record = LedgerWire().encode_command(
        Command(meta=meta, body=RecordBudgetUse(tokens=1, time_ms=1))
    )
    assert record.partition == DefaultPartitioner()(record.key, ALL, ALL)
    assert misrouted(record.key, record.partition, mission_id, COMMANDS.partitions) is None


def test_commands_and_events_share_their_partition_count() -> None:
    """What lets one partition number serve a mission's commands and its events."""
    assert COMMANDS.partitions == EVENTS.partitions
