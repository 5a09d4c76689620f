DROP TABLE quota_usage;
DROP TABLE quota_leases;
DROP TABLE quotas;
