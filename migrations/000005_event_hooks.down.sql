DROP TABLE event_hook_schedule;
DROP TABLE event_hooks;
