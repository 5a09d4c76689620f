DROP TABLE poll_cursors;
