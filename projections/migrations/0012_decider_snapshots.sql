-- Decider snapshots (issue 12): each mission's state as the decider last saved it, and per
-- partition of mission.events the offset the snapshots cover, so a restarting decider
-- reads snapshot + tail instead of all history, and keeps only recent missions in memory.
-- Written by the decider only (ledger/snapshots.py); never read by the API.
CREATE TABLE decider_snapshots (
    mission_id text    PRIMARY KEY,
    partition  integer NOT NULL,
    sequence   bigint  NOT NULL,
    state      jsonb   NOT NULL
);

CREATE TABLE decider_snapshot_marks (
    partition   integer PRIMARY KEY,
    next_offset bigint  NOT NULL,
    last_offset bigint,
    last_hash   text
);
