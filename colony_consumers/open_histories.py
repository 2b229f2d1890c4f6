"""What a colony taking a partition must fold: the missions still open at its stored
offset. Pure.

The colony's memory holds only missions being worked, yet finding them used to mean
decoding and folding the partition's whole history (about 18k events a second: a minute
for a million events, before the colony reacted to anything). Every record names its
mission in its key and its type in a header, so the history is grouped by mission as it
is read, undecoded; a mission is dropped when its ending event is seen, and only what is
left, the open missions, is decoded and folded, in log order.

An ending header is believed only when its record decodes (Avro alone: validating would
cost more than the rest of the reading) to an ending event of the key's mission, at the
position its group has reached. Anything else (a forged header, a
record that is no event, a duplicate before it) keeps the mission: doubt costs a fold,
never a live mission.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import chain

from aiokafka import ConsumerRecord

from ledger.state import ENDING_EVENTS
from ledger.wire import EVENT_TYPE_HEADER, InvalidRecordError


class OpenHistories:
    def __init__(self, position: Callable[[bytes], tuple[str, str, int]]) -> None:
        """`position`: an event record's (type, mission id, sequence) (LedgerWire)."""
        self._position = position
        self._open: dict[bytes | None, list[tuple[int, bytes]]] = {}
        self._ended: dict[bytes | None, None] = {}  # an ordered set: oldest ending first

    def add(self, record: ConsumerRecord) -> None:
        """Take the next record of the partition (in offset order)."""
        key = record.key
        if key in self._ended:
            return  # a mission's events after its end are ignored, as when reacting
        group = self._open.setdefault(key, [])
        group.append((record.offset, record.value or b""))
        if _type(record) in ENDING_EVENTS and self._ends(key, group):
            del self._open[key]
            self._ended[key] = None

    def _ends(self, key: bytes | None, group: list[tuple[int, bytes]]) -> bool:
        try:
            event_type, mission_id, sequence = self._position(group[-1][1])
        except InvalidRecordError:
            return False
        return event_type in ENDING_EVENTS and mission_id.encode() == key and sequence == len(group)

    def records(self) -> list[tuple[int, bytes]]:
        """The open missions' records (offset, value), in log order."""
        return sorted(chain.from_iterable(self._open.values()))

    def ended(self) -> list[str]:
        """The missions that ended, oldest ending first."""
        return [key.decode(errors="replace") for key in self._ended if key is not None]


def _type(record: ConsumerRecord) -> str:
    for name, value in record.headers or ():
        if name == EVENT_TYPE_HEADER:
            return bytes(value).decode(errors="replace")
    return ""
