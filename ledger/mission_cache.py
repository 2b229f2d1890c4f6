"""The mission states a decider holds for one partition, bounded when snapshots back it.

States changed since the last snapshot are *dirty* and always kept; saved ones are kept
as long as they are among the `limit` most recently used, and reloaded from the snapshot
store on a miss (ledger/snapshots.py). Without a store (`limit` None) nothing is evicted.
"""

from __future__ import annotations

from collections import OrderedDict

from ledger.state import MissionState


class MissionCache:
    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit
        self.states: OrderedDict[str, MissionState] = OrderedDict()
        self.dirty: set[str] = set()
        self._newly_dirty = 0

    def __len__(self) -> int:
        return len(self.states)

    def __contains__(self, mission_id: str) -> bool:
        return mission_id in self.states

    def get(self, mission_id: str) -> MissionState | None:
        state = self.states.get(mission_id)
        if state is not None:
            self.states.move_to_end(mission_id)
        return state

    def put(self, state: MissionState) -> None:
        """Hold `state` (changed: dirty until saved)."""
        self.states[state.mission_id] = state
        self.states.move_to_end(state.mission_id)
        if self.limit is not None and state.mission_id not in self.dirty:
            self.dirty.add(state.mission_id)
            self._newly_dirty += 1

    def newly_dirty(self) -> int:
        """How many states became dirty since the last call (counting restarts at 0)."""
        count, self._newly_dirty = self._newly_dirty, 0
        return count

    def unsaved(self) -> list[MissionState]:
        return [self.states[mission_id] for mission_id in self.dirty]

    def saved(self, states: list[MissionState]) -> None:
        """`states` are in the store now (unless changed since): evict the least recently
        used saved states beyond the limit."""
        for state in states:
            if self.states.get(state.mission_id) is state:
                self.dirty.discard(state.mission_id)
        if self.limit is None:
            return
        excess = len(self.states) - self.limit
        for mission_id in [m for m in self.states if m not in self.dirty][: max(excess, 0)]:
            del self.states[mission_id]

    def values(self) -> list[MissionState]:
        return list(self.states.values())
