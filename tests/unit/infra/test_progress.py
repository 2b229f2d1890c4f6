"""Progress of long operator work (infra/progress.py), as a log reads it."""

from __future__ import annotations

import pytest

from infra.progress import Progress


def test_work_that_reports_how_far_it_has_come_shows_how_many_of_how_many(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A restore reports its count chunk by chunk: the first report shows at once, the
    next ones at most every few seconds in a log, and the end always, with the total."""
    progress = Progress("restored archived events")
    progress.reach(5_000, 216_467)
    progress.reach(10_000, 216_467)
    progress.reach(216_467, 216_467)
    progress.finish()
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" (")[0] for line in lines] == [
        "restored archived events: 5,000 / 216,467",
        "restored archived events: 216,467 / 216,467",
    ]
