-- The approval queue is read a page at a time: the pending ones oldest first from a
-- cursor (requested_at, writeback_id), the decided ones newest first. The pending rows
-- get their own index in that order, so a page costs its rows wherever it starts; the
-- decided ones one by decision time, which the queue sorted in full on every read.
-- approvals_pending (status, requested_at) stays: the sweeper reads approved ones by it.
CREATE INDEX approvals_pending_queue ON approvals (requested_at, writeback_id)
    WHERE status = 'pending';
CREATE INDEX approvals_decided ON approvals (decided_at DESC NULLS LAST)
    WHERE status <> 'pending';
