"""The decider's bounded memory (ledger/mission_cache.py): only saved states leave it,
least recently used first."""

from __future__ import annotations

from ledger.mission_cache import MissionCache
from ledger.state import MissionState


def state(mission_id: str, sequence: int = 1) -> MissionState:
    return MissionState(mission_id=mission_id, sequence=sequence)


def test_unsaved_states_are_never_evicted_whatever_the_limit() -> None:
    cache = MissionCache(limit=1)
    for name in "abc":
        cache.put(state(name))
    cache.saved([])
    assert len(cache) == 3 and {s.mission_id for s in cache.unsaved()} == {"a", "b", "c"}


def test_saved_states_beyond_the_limit_go_least_recently_used_first() -> None:
    cache = MissionCache(limit=2)
    for name in "abc":
        cache.put(state(name))
    cache.get("a")  # used again: now the most recent
    cache.saved(cache.unsaved())
    assert cache.get("b") is None and cache.get("a") is not None and cache.get("c") is not None


def test_a_state_changed_after_its_snapshot_was_taken_stays_unsaved() -> None:
    cache = MissionCache(limit=1)
    cache.put(state("a"))
    taken = cache.unsaved()
    cache.put(state("a", sequence=2))  # decided while the snapshot was being written
    cache.saved(taken)
    assert [s.sequence for s in cache.unsaved()] == [2]


def test_without_a_snapshot_store_nothing_is_evicted_or_tracked() -> None:
    cache = MissionCache()
    for name in "abcdef":
        cache.put(state(name))
    cache.saved([])
    assert len(cache) == 6 and cache.unsaved() == []


def test_newly_dirty_counts_states_that_became_unsaved_since_it_was_last_asked() -> None:
    """What the decider adds to a flush's budget (ledger/decider.py `snapshot`): the
    missions deciding changed, each once however many commands it took."""
    cache = MissionCache(limit=10)
    for sequence in (1, 2, 3):
        cache.put(state("a", sequence))
    cache.put(state("b"))
    assert cache.newly_dirty() == 2
    cache.put(state("a", 4))  # still unsaved: not new
    assert cache.newly_dirty() == 0
    cache.saved(cache.unsaved())
    cache.put(state("a", 5))
    assert cache.newly_dirty() == 1
