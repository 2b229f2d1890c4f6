-- Events a view could not apply, parked per (view, mission) as Axon's sequenced dead-letter
-- queue does: the first failing event carries the error, the same mission's later events
-- wait behind it (error NULL), other missions keep flowing. `velocity projections
-- parked|retry|evict` work this table.
CREATE TABLE projection_parked (
    projection   text        NOT NULL,
    topic        text        NOT NULL,
    partition    integer     NOT NULL,
    topic_offset bigint      NOT NULL,
    parking_key  text        NOT NULL,  -- the mission id (metric id for metric samples)
    sequence     bigint,
    event_type   text        NOT NULL,
    error        text,                  -- NULL: waiting behind an earlier parked event
    record       bytea       NOT NULL,
    parked_at    timestamptz NOT NULL DEFAULT now(),
    attempts     integer     NOT NULL DEFAULT 1,
    last_tried_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, topic, partition, topic_offset)
);
CREATE INDEX projection_parked_by_key ON projection_parked (projection, topic, parking_key, topic_offset);

-- Parked events an operator evicted from a view: never applied to it, kept with who and why.
CREATE TABLE projection_evictions (
    eviction_id  bigserial   PRIMARY KEY,
    projection   text        NOT NULL,
    topic        text        NOT NULL,
    partition    integer     NOT NULL,
    topic_offset bigint      NOT NULL,
    parking_key  text        NOT NULL,
    sequence     bigint,
    event_type   text        NOT NULL,
    error        text,
    record       bytea       NOT NULL,
    evicted_by   text        NOT NULL,
    reason       text        NOT NULL,
    evicted_at   timestamptz NOT NULL DEFAULT now()
);

-- Records of mission.events that are not links of any mission's chain: bytes that do not
-- decode, or an event whose (mission, sequence) or id is already taken (a forgery or a
-- fork). Kept by offset so a restore republishes the log exactly, offsets included.
CREATE TABLE ledger_set_aside (
    topic_partition integer     NOT NULL,
    topic_offset    bigint      NOT NULL,
    record_key      bytea,
    record          bytea       NOT NULL,
    mission_id      text,
    reason          text        NOT NULL,
    detail          text        NOT NULL,
    set_aside_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic_partition, topic_offset)
);

-- The archive keeps every chained event even when its text cannot be stored as jsonb (a
-- NUL from an older writer): `data` then has U+FFFD in its place and data_exact is false;
-- `record` still holds the exact bytes the hash covers.
ALTER TABLE ledger_events ADD COLUMN data_exact boolean NOT NULL DEFAULT true;

-- Dead letters as projected from mission.deadletter, and their re-drives.
CREATE TABLE dead_letters (
    letter_id        text        PRIMARY KEY,  -- digest of what the letter is about and when
    source_topic     text        NOT NULL,
    source_partition integer     NOT NULL,
    source_offset    bigint      NOT NULL,
    record_key       bytea,
    original         bytea       NOT NULL,
    reason           text        NOT NULL,
    detail           text        NOT NULL,
    consumer         text        NOT NULL,
    failed_at        timestamptz NOT NULL,
    redriven_at      timestamptz,
    redriven_by      text,
    redrive_reason   text
);
CREATE INDEX dead_letters_by_reason ON dead_letters (source_topic, reason);

-- What the colony did to a provider's output before recording it (TaskSucceeded.notes).
ALTER TABLE tasks ADD COLUMN notes text[] NOT NULL DEFAULT '{}';
