-- Approvals are addressed by their writeback id (the colony makes them UUIDs).
CREATE UNIQUE INDEX approvals_by_id ON approvals (writeback_id);
