-- The views the root API serves, beyond the mission row: tasks, the approval queue,
-- evidence (artifacts, reviewer packets), policy decisions. All rebuilt from the log.
ALTER TABLE missions
    ADD COLUMN project_id     text,
    ADD COLUMN lead_company   text,
    ADD COLUMN lead_contact   text,
    ADD COLUMN replay_of      text,
    ADD COLUMN replayed_as    text[]      NOT NULL DEFAULT '{}',
    ADD COLUMN tokens_used    bigint      NOT NULL DEFAULT 0,
    ADD COLUMN time_used_ms   bigint      NOT NULL DEFAULT 0,
    ADD COLUMN status_since   timestamptz,
    ADD COLUMN completed_at   timestamptz,
    ADD COLUMN output         text,
    ADD COLUMN verdict        text,
    ADD COLUMN failure_reason text,
    ADD COLUMN last_rejection text;
UPDATE missions SET status_since = created_at WHERE status_since IS NULL;
CREATE INDEX missions_by_status_since ON missions (status, status_since);

CREATE TABLE tasks (
    mission_id   text        NOT NULL,
    task_id      text        NOT NULL,
    kind         text        NOT NULL,
    description  text        NOT NULL,
    depends_on   text[]      NOT NULL DEFAULT '{}',
    status       text        NOT NULL,
    attempt      integer     NOT NULL DEFAULT 0,
    worker       text,
    started_at   timestamptz,
    finished_at  timestamptz,
    summary      text,
    error        text,
    tokens_used  bigint      NOT NULL DEFAULT 0,
    duration_ms  bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (mission_id, task_id)
);
CREATE INDEX tasks_by_status ON tasks (status, started_at);

CREATE TABLE approvals (
    writeback_id  text        NOT NULL,
    mission_id    text        NOT NULL,
    target        text        NOT NULL,
    record_ref    text        NOT NULL,
    changes       jsonb       NOT NULL,
    rationale     text        NOT NULL,
    summary       text        NOT NULL DEFAULT '',
    status        text        NOT NULL,  -- pending, approved, rejected, executed, failed
    requested_at  timestamptz NOT NULL,
    decided_at    timestamptz,
    decided_by    text,
    reason        text,
    finished_at   timestamptz,
    detail        text,
    PRIMARY KEY (mission_id, writeback_id)
);
CREATE INDEX approvals_pending ON approvals (status, requested_at);

CREATE TABLE artifacts (
    mission_id   text        NOT NULL,
    artifact_id  text        NOT NULL,
    kind         text        NOT NULL,
    content_hash text        NOT NULL,
    source       text        NOT NULL,
    size_bytes   bigint      NOT NULL,
    recorded_at  timestamptz NOT NULL,
    PRIMARY KEY (mission_id, artifact_id)
);
CREATE INDEX artifacts_by_hash ON artifacts (content_hash);

CREATE TABLE reviewer_packets (
    mission_id   text        NOT NULL,
    sequence     bigint      NOT NULL,
    packet_hash  text        NOT NULL,
    verdict      text        NOT NULL,
    output       text        NOT NULL,
    checks       text[]      NOT NULL,
    recorded_at  timestamptz NOT NULL,
    PRIMARY KEY (mission_id, sequence)
);

CREATE TABLE policy_decisions (
    mission_id   text        NOT NULL,
    sequence     bigint      NOT NULL,
    task_id      text        NOT NULL,
    tool         text        NOT NULL,
    decision     text        NOT NULL,
    rule_id      text        NOT NULL,
    reason       text        NOT NULL,
    mission_type text,
    decided_at   timestamptz NOT NULL,
    PRIMARY KEY (mission_id, sequence)
);
CREATE INDEX policy_decisions_by_rule ON policy_decisions (rule_id, decision, decided_at);

-- Content-addressed artifact bodies the colony persists through POST /internal/artifacts.
-- Not a projection: the bytes are the evidence; events reference them by hash.
CREATE TABLE artifact_blobs (
    content_hash text        PRIMARY KEY,
    media_type   text        NOT NULL,
    size_bytes   bigint      NOT NULL,
    content      bytea       NOT NULL,
    stored_at    timestamptz NOT NULL DEFAULT now(),
    stored_by    text        NOT NULL
);
