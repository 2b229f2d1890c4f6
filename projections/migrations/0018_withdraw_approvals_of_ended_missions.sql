-- A mission that ended (failed, cancelled, timed out) while a writeback of it waited left
-- the approval pending for good: nobody can decide it (the ledger refuses commands of an
-- ended mission), yet it stayed in the queue and held the backlog alert up. The approvals
-- projection now withdraws such approvals as the mission ends; this does the same for
-- those already waiting, from the archived event that ended each mission, with the
-- detail the projection writes (projections/approvals.py `why_ended`).
UPDATE approvals a
SET status = 'withdrawn',
    finished_at = e.occurred_at,
    detail = CASE e.event_type
        WHEN 'MissionFailed' THEN 'the mission failed: ' || (e.data ->> 'reason')
        WHEN 'MissionCancelled' THEN 'the mission was cancelled: ' || (e.data ->> 'reason')
        ELSE 'the mission timed out in ' || (e.data ->> 'stage') || ' after '
             || (e.data ->> 'timeout_ms') || ' ms'
    END
FROM ledger_events e
WHERE a.status = 'pending'
  AND e.mission_id = a.mission_id
  AND e.event_type IN ('MissionFailed', 'MissionCancelled', 'MissionTimedOut');
