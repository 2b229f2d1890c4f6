"""The console's status tabs say how many missions each status holds, up to a cap."""

from __future__ import annotations

from gateway.console.pages import shown_count
from projections.queries import COUNT_CAP


def test_a_tab_shows_the_count_then_the_cap_with_a_plus() -> None:
    assert shown_count(999) == "999"
    assert shown_count(0) == "0"
    assert shown_count(COUNT_CAP) == f"{COUNT_CAP:,}"
    assert shown_count(COUNT_CAP + 1) == f"{COUNT_CAP:,}+"
