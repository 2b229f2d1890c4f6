"""Projector offsets stored in PostgreSQL, read and written inside the batch transaction."""

from __future__ import annotations

from infra.database import Connection, Queryable

LOCK = """
SELECT projector, partition, next_offset FROM projector_offsets
WHERE topic = $1 AND partition = ANY($2::int[]) AND projector = ANY($3::text[])
FOR UPDATE
"""

SAVE = """
INSERT INTO projector_offsets (projector, topic, partition, next_offset)
SELECT projector, $1, partition, next_offset
FROM unnest($2::text[], $3::int[], $4::bigint[]) AS saved(projector, partition, next_offset)
ON CONFLICT (projector, topic, partition)
DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()
"""
"""Every offset of a batch in one statement: a live batch stores one per projection and
partition it touched (~27), each its own execution when sent as many."""

StoredOffsets = dict[tuple[str, int], int]


async def lock_offsets(
    connection: Connection, topic: str, partitions: list[int], projectors: list[str]
) -> StoredOffsets:
    """(projector, partition) -> next offset to apply; absent means 0. Rows are locked."""
    rows = await connection.fetch(LOCK, topic, partitions, projectors)
    return {(row["projector"], row["partition"]): row["next_offset"] for row in rows}


async def save_offsets(connection: Connection, topic: str, offsets: StoredOffsets) -> None:
    if offsets:
        names = [name for name, _ in offsets]
        partitions = [partition for _, partition in offsets]
        await connection.execute(SAVE, topic, names, partitions, list(offsets.values()))


async def resume_positions(
    connection: Queryable,
    topic: str,
    partitions: list[int],
    projectors: list[str],
) -> dict[int, int]:
    """Where to start reading each partition: the least offset any projection still needs."""
    rows = await connection.fetch(
        "SELECT partition, projector, next_offset FROM projector_offsets"
        " WHERE topic = $1 AND partition = ANY($2::int[]) AND projector = ANY($3::text[])",
        topic,
        partitions,
        projectors,
    )
    stored = {(row["projector"], row["partition"]): row["next_offset"] for row in rows}
    return {p: min(stored.get((name, p), 0) for name in projectors) for p in partitions}
