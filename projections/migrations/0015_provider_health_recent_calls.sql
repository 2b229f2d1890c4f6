-- The console's provider health reads at most the last 10,000 provider calls of the hour,
-- newest first through metric_samples_by_name, and lists the 50 busiest providers. Over a
-- whole hour it aggregated every call (180 ms a page at 300,000 calls in the hour, growing
-- with load), and listed every provider name a producer had written.
CREATE OR REPLACE VIEW provider_health AS
WITH recent AS (
    SELECT labels, value FROM metric_samples
    WHERE name = 'provider_call' AND recorded_at > now() - interval '1 hour'
    ORDER BY recorded_at DESC
    LIMIT 10000
)
SELECT labels->>'provider' AS provider,
       count(*) AS calls,
       count(*) FILTER (WHERE labels->>'outcome' <> 'ok') AS failures,
       round((count(*) FILTER (WHERE labels->>'outcome' <> 'ok'))::numeric
             / greatest(count(*), 1), 4) AS failure_rate,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY value) AS p50_ms,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY value) AS p99_ms
FROM recent
GROUP BY 1
ORDER BY calls DESC, provider
LIMIT 50;
