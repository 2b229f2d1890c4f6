"""A restore at the stack's start says how far it has come while it runs."""

from __future__ import annotations

from loguru import logger

from infra.preparation import RestoreProgress


def test_a_restore_logs_its_progress_at_most_every_interval_and_not_its_end() -> None:
    """Chunks reported in quick succession log nothing; once the interval has passed the
    next chunk logs how many of how many are restored; the last chunk is left to the
    restore's own closing line."""
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(message.record["message"]), level="INFO")
    try:
        progress = RestoreProgress()
        progress(5_000, 1_200_000)
        progress(10_000, 1_200_000)
        assert lines == []
        progress.last -= RestoreProgress.PROGRESS_EVERY_S
        progress(15_000, 1_200_000)
        progress(20_000, 1_200_000)
        progress.last -= RestoreProgress.PROGRESS_EVERY_S
        progress(1_200_000, 1_200_000)
    finally:
        logger.remove(sink)
    assert lines == ["restored 15,000 of 1,200,000 archived events"]
