-- Mission traces (issue 11): the W3C traceparent of each mission's last event, so a
-- command about an existing mission (an operator's approval) continues the mission's
-- OpenTelemetry trace under the event it answers. NULL for events that carried none
-- (recorded before tracing, or restored from the archive).
ALTER TABLE missions ADD COLUMN traceparent text;
