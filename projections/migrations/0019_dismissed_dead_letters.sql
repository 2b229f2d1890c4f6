-- A letter that must not or cannot be re-driven (an event or a metric record, a command
-- still invalid, one about a mission whose history is full, a forgery) waited for good:
-- readiness read degraded and the console listed it until someone re-drove it, which for
-- those is refused or pointless. An operator now dismisses it after looking (`velocity
-- deadletters dismiss`): kept for the audit, with who, when and why, no longer waiting.
ALTER TABLE dead_letters
    ADD COLUMN dismissed_at timestamptz,
    ADD COLUMN dismissed_by text,
    ADD COLUMN dismiss_reason text;
