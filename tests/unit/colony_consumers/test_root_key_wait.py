"""While the root starts, the colony asks it again soon, then every 2 s."""

from __future__ import annotations

from itertools import islice

from colony_consumers.root_client import key_check_delays


def test_the_root_is_asked_again_soon_at_first_then_at_the_steady_interval() -> None:
    """A root starting beside the colony answers within a second or so: the first checks
    come a quarter, a half and a whole second apart; a root that stays away is then asked
    every 2 s, never more rarely."""
    delays = list(islice(key_check_delays(), 8))
    assert delays == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0]
