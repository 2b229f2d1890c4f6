-- The metric families' tables rewritten once (issue 12, sixteenth session): counting each
-- sample with its own statement updated their few rows once a sample, and a million
-- samples left ~100 MB of dead row versions that every /metrics scrape read through.
-- Since then a batch updates each row once; CLUSTER rewrites what an upgraded database
-- already holds (its live rows only), under a lock held for as long as those few rows take.
CLUSTER metric_counters USING metric_counters_pkey;
CLUSTER metric_histograms USING metric_histograms_pkey;
