ALTER TABLE notifications DROP COLUMN traceparent;
DROP TABLE audit_log;
