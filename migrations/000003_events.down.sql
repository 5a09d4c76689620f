DROP TABLE notification_attempts;
DROP TABLE events;
DROP TABLE notifications;
