DROP TABLE IF EXISTS shard_leases;
DROP TABLE IF EXISTS cluster_members;
