-- Dead letters counted as they are stored, by source topic and reason: every /metrics
-- scrape and every /readyz counted the whole dead_letters table (170-200 ms each with a
-- million letters, which a producer with the wrong partitioner writes in hours).
-- `letters`: all ever stored; `waiting`: those not re-driven yet.
CREATE TABLE dead_letter_counts (
    source_topic text   NOT NULL,
    reason       text   NOT NULL,
    letters      bigint NOT NULL,
    waiting      bigint NOT NULL,
    PRIMARY KEY (source_topic, reason)
);
INSERT INTO dead_letter_counts (source_topic, reason, letters, waiting)
SELECT source_topic, reason, count(*), count(*) FILTER (WHERE redriven_at IS NULL)
FROM dead_letters GROUP BY 1, 2;
