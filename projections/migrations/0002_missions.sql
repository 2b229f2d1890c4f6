-- One row per mission: what the root API answers GET /missions/{id} from.
CREATE TABLE missions (
    mission_id      text        PRIMARY KEY,
    mission_type    text        NOT NULL,
    mode            text        NOT NULL,
    environment     text        NOT NULL,
    objective       text        NOT NULL,
    status          text        NOT NULL,
    stage           text        NOT NULL,
    time_budget_ms  bigint      NOT NULL,
    token_budget    bigint      NOT NULL,
    requested_by    text        NOT NULL,
    correlation_id  text        NOT NULL,
    trace_id        text        NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    last_sequence   bigint      NOT NULL,
    last_hash       text        NOT NULL
);
CREATE INDEX missions_by_type_status ON missions (mission_type, status, created_at);
CREATE INDEX missions_by_created ON missions (created_at, mission_id);
