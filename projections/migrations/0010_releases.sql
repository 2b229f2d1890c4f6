-- Release readiness as ledger data (issue 11): gate runs with each check's evidence, and
-- each environment's rollout step with its history. Built from the release streams
-- (`release-gates:<run_id>`, `rollout:<environment>`) of mission.events.
CREATE TABLE gate_runs (
    run_id       text        PRIMARY KEY,
    stream_id    text        NOT NULL UNIQUE,
    version      text        NOT NULL,
    environment  text        NOT NULL,
    root_url     text        NOT NULL,
    started_by   text        NOT NULL,
    started_at   timestamptz NOT NULL,
    completed_at timestamptz,
    passed       boolean,
    checks       integer     NOT NULL DEFAULT 0,
    failed       integer     NOT NULL DEFAULT 0
);
CREATE INDEX gate_runs_by_environment ON gate_runs (environment, started_at);

CREATE TABLE gate_checks (
    stream_id   text        NOT NULL,
    sequence    integer     NOT NULL,
    gate        integer     NOT NULL,
    check_name  text        NOT NULL,
    passed      boolean     NOT NULL,
    evidence    text        NOT NULL,
    duration_ms bigint      NOT NULL,
    recorded_at timestamptz NOT NULL,
    PRIMARY KEY (stream_id, sequence)
);

CREATE TABLE rollout_steps (
    environment     text        PRIMARY KEY,
    step            integer     NOT NULL,
    changed_at      timestamptz NOT NULL,
    changed_by      text        NOT NULL,
    reason          text        NOT NULL,
    evidence_hash   text,
    evidence_run_id text
);

CREATE TABLE rollout_history (
    environment     text        NOT NULL,
    sequence        integer     NOT NULL,
    from_step       integer     NOT NULL,
    to_step         integer     NOT NULL,
    direction       text        NOT NULL,
    reason          text        NOT NULL,
    changed_by      text        NOT NULL,
    changed_at      timestamptz NOT NULL,
    evidence_hash   text,
    evidence_run_id text,
    PRIMARY KEY (environment, sequence)
);
