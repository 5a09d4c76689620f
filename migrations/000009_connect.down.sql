DROP TABLE IF EXISTS connect_sessions;
DROP TABLE IF EXISTS organization_oauth_apps;
