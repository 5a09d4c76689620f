DROP INDEX IF EXISTS notifications_delivered;
