DROP TABLE instance_bridge_keys;
