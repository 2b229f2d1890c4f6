-- Operational measurements from colony.metrics, and the rollups dashboards read.
CREATE TABLE metric_samples (
    metric_id   text        PRIMARY KEY,
    name        text        NOT NULL,
    value       double precision NOT NULL,
    labels      jsonb       NOT NULL,
    mission_id  text,
    trace_id    text,
    recorded_at timestamptz NOT NULL
);
CREATE INDEX metric_samples_by_name ON metric_samples (name, recorded_at);

-- Provider health: calls, failures and latency per provider over the last hour.
CREATE VIEW provider_health AS
SELECT labels->>'provider' AS provider,
       count(*) AS calls,
       count(*) FILTER (WHERE labels->>'outcome' <> 'ok') AS failures,
       round((count(*) FILTER (WHERE labels->>'outcome' <> 'ok'))::numeric
             / greatest(count(*), 1), 4) AS failure_rate,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY value) AS p50_ms,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY value) AS p99_ms
FROM metric_samples
WHERE name = 'provider_call' AND recorded_at > now() - interval '1 hour'
GROUP BY 1;

-- Missions by type and outcome (mission success and failure counters by mission type).
CREATE VIEW mission_outcomes AS
SELECT mission_type, status AS outcome, count(*) AS missions
FROM missions WHERE status IN ('completed', 'failed', 'cancelled', 'timed_out')
GROUP BY 1, 2;

-- Time spent in each stage, from the ledger: each status change to the next one.
CREATE VIEW stage_durations AS
SELECT mission_id, event_type, occurred_at,
       extract(epoch FROM lead(occurred_at) OVER w - occurred_at) * 1000 AS duration_ms
FROM ledger_events
WHERE event_type IN ('MissionRequested', 'PlanningStarted', 'MissionPlanned', 'ReviewStarted',
                     'ApprovalRequested', 'MissionCompleted', 'MissionFailed',
                     'MissionCancelled', 'MissionTimedOut')
WINDOW w AS (PARTITION BY mission_id ORDER BY sequence);

CREATE VIEW stage_latency AS
SELECT CASE event_type
         WHEN 'MissionRequested' THEN 'intake' WHEN 'PlanningStarted' THEN 'planning'
         WHEN 'MissionPlanned' THEN 'tasks' WHEN 'ReviewStarted' THEN 'review'
         WHEN 'ApprovalRequested' THEN 'approval' END AS stage,
       count(*) AS transitions,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95_ms,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ms) AS p99_ms
FROM stage_durations
WHERE duration_ms IS NOT NULL
  AND event_type IN ('MissionRequested', 'PlanningStarted', 'MissionPlanned', 'ReviewStarted',
                     'ApprovalRequested')
GROUP BY 1;
