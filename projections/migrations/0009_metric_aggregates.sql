-- Prometheus-native metrics maintained as samples arrive (issue 11): counters and
-- histograms per (family, labels), so /metrics reads a handful of rows whatever the
-- history. Each sample of colony.metrics changes them once: the sample's insert into
-- metric_samples (keyed by metric id) gates the increments in the same statement.
-- They start empty at this migration: samples stored before stay in metric_samples.
CREATE TABLE metric_counters (
    family text             NOT NULL,
    labels jsonb            NOT NULL,
    value  double precision NOT NULL,
    PRIMARY KEY (family, labels)
);

CREATE TABLE metric_histograms (
    family        text             NOT NULL,
    labels        jsonb            NOT NULL,
    bucket_counts bigint[]         NOT NULL,  -- per bucket (not cumulative), +Inf last
    count         bigint           NOT NULL,
    sum           double precision NOT NULL,
    PRIMARY KEY (family, labels)
);
