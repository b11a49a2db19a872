// Package migrations embeds the schema migrations of tapline's stores, in
// golang-migrate's NNNN_name.up / .down format. The postgres/*.sql set
// defines the accounts, apps, links, hourly fact tables and consumer
// offsets. The cassandra/*.cql set defines the Cassandra raw store's tables:
// raw hits and events with their index tables (60-day TTL, time-window
// compaction), per-app retention cut-offs, and conversions with their
// index tables (kept forever); the keyspace itself is created by the store
// from its replication settings.
package migrations
