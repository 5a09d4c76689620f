DROP TABLE instance_credentials;
DROP TABLE instances;
DROP TABLE users;
DROP TABLE organizations;
