// Package cassandra implements tapline.RawStore on Apache Cassandra through
// gocql, for the scale-out deployment.
//
// Raw hits and events live in append-only tables with a 60-day
// default_time_to_live and time-window compaction. Each row is written to a
// table keyed by (app, id) and to index tables keyed by (app, day,
// fingerprint) and (app, day, advertising id), so partitions stay bounded
// even for hot keys, plus installs by (app, referrer hit id). Lookups by
// time visit one partition per day of the range.
//
// PutHit and PutEvent are put-if-absent: a lightweight transaction (INSERT
// ... IF NOT EXISTS, a Paxos round of four round trips between replicas) on
// the (app, id) table decides which write wins, and the winner then writes
// the index tables with plain idempotent inserts. A put that lost, or a
// retry of a put that failed half way, finds the stored row; when it equals
// the row being put, the index writes are repeated, which repairs them.
//
// DeleteBefore cannot delete rows in an append-only, TTL'd design. It
// records a per-app cut-off in app_cutoffs (no TTL); every lookup uses it as
// a lower bound on row time, so older rows are invisible at once, and their
// TTL removes them from disk later. A put whose id is held only by an
// invisible row replaces that row with a compare-and-set.
//
// Conversions are kept forever in tables without TTL, replaced in place,
// with index tables by install id and by hit id that hold conversion ids;
// lookups read the conversions and keep those whose current install or hit
// matches, so an index entry left behind by a re-attribution never answers.
//
// Every statement binds all partition-key columns, so gocql prepares it and
// routes it to a replica (token-aware policy, DC-aware when LocalDC is
// set). Statements run at Config.Consistency (LOCAL_QUORUM by default) and
// only idempotent ones are retried. Errors come back as tapline errors:
// ENOTFOUND for a missing row, EUNAVAILABLE when replicas are down,
// overloaded or timing out, or the cluster cannot be reached.
//
// ScanEvents reads the whole events table split into token ranges, in
// parallel, for backfills.
package cassandra
