-- Liveness of the background services (decider, projector, colony): each instance
-- writes here every few seconds; readiness checks read how long ago that was.
CREATE TABLE service_heartbeats (
    service      text        NOT NULL,
    instance     text        NOT NULL,
    started_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    details      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (service, instance)
);
