"""The dead letters view: every letter of `mission.deadletter`, once, for the root's
metrics and readiness and for `velocity deadletters list|redrive`. Re-drive marks are
operator actions on these rows, so the view is never rebuilt (a rebuild would lose them).
"""

from __future__ import annotations

import hashlib

from ledger.dead_letters import DeadLetter
from ledger.text import cleaned
from projections.projection import Projected, Projection, Write

INSERT = """
WITH stored AS (
    INSERT INTO dead_letters (letter_id, source_topic, source_partition, source_offset,
                              record_key, original, reason, detail, consumer, failed_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (letter_id) DO NOTHING
    RETURNING source_topic, reason
)
INSERT INTO dead_letter_counts (source_topic, reason, letters, waiting)
SELECT source_topic, reason, 1, 1 FROM stored
ON CONFLICT (source_topic, reason) DO UPDATE
SET letters = dead_letter_counts.letters + 1, waiting = dead_letter_counts.waiting + 1
"""
"""A letter stored once, and counted once with it (`dead_letter_counts`): the root's
/metrics and /readyz read the counts, a few rows, not the letters."""


def letter_id(letter: DeadLetter) -> str:
    """A short id from what the letter is about and when, not from where it sits in the
    dead-letter topic: the same letter read twice (the topic re-read after the embedded
    broker restarted) keeps its id and is stored once."""
    about = (
        f"{letter.source_topic}/{letter.source_partition}/{letter.source_offset}/"
        f"{letter.consumer}/{letter.failed_at.isoformat()}"
    )
    return hashlib.sha256(about.encode(errors="replace")).hexdigest()[:16]


class DeadLettersProjection(Projection[DeadLetter]):
    """Projection `dead_letters` into the `dead_letters` table."""

    name = "dead_letters"
    tables: tuple[str, ...] = ("dead_letters", "dead_letter_counts")
    rebuildable = False

    def writes(self, item: Projected[DeadLetter]) -> list[Write]:
        letter = item.event
        args = (
            letter_id(letter),
            cleaned(letter.source_topic)[0],
            letter.source_partition,
            letter.source_offset,
            letter.key,
            letter.original,
            cleaned(letter.reason)[0],
            cleaned(letter.detail)[0][:2_000],
            cleaned(letter.consumer)[0],
            letter.failed_at,
        )
        return [(INSERT, args)]
