-- The append-only archive of every ledger event: what auditors query without Kafka,
-- and what restores an empty broker. One row per (mission, sequence), exactly once.
CREATE TABLE ledger_events (
    mission_id      text        NOT NULL,
    sequence        bigint      NOT NULL CHECK (sequence >= 1),
    event_id        text        NOT NULL UNIQUE,
    event_type      text        NOT NULL,
    occurred_at     timestamptz NOT NULL,
    causation_id    text        NOT NULL,
    correlation_id  text        NOT NULL,
    trace_id        text        NOT NULL,
    actor           text        NOT NULL,
    prev_hash       text        NOT NULL,
    hash            text        NOT NULL,
    data            jsonb       NOT NULL,
    record          bytea       NOT NULL,
    topic_partition integer     NOT NULL,
    topic_offset    bigint      NOT NULL,
    archived_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mission_id, sequence),
    UNIQUE (topic_partition, topic_offset)
);
CREATE INDEX ledger_events_occurred_at ON ledger_events (occurred_at);
CREATE INDEX ledger_events_causation ON ledger_events (causation_id);

CREATE FUNCTION ledger_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger_events is append-only: % refused', TG_OP;
END;
$$;
CREATE TRIGGER ledger_events_no_update_or_delete
    BEFORE UPDATE OR DELETE ON ledger_events
    FOR EACH ROW EXECUTE FUNCTION ledger_events_append_only();

-- Where each projector stands in each topic partition, written in the same
-- transaction as its rows: the projector resumes from here, not from group offsets.
CREATE TABLE projector_offsets (
    projector   text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    next_offset bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projector, topic, partition)
);
