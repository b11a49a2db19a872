// Package pebble implements the embedded tapline.Bus and tapline.RawStore on
// pebble (github.com/cockroachdb/pebble/v2), for the single-machine binary,
// and the Spool: the scale-out collector's bounded disk buffer in front of
// Kafka while Kafka is unreachable.
//
// Each of Bus and RawStore opens its own pebble database in its own
// directory. Keys are order-preserving: integers are big-endian with the sign
// bit flipped, strings are escaped so that 0x00 0x01 ends them.
//
// The raw store keeps hits and events under a prefix of app and week bucket
// ("R" app bucket ...), so DeleteBefore is one range delete plus a per-app
// watermark that hides the rows of the partly expired bucket. Conversions
// live outside the buckets and never expire; the index of conversions by
// installation sorts by the installation's key, as the index of events by
// installation does, so a funnel backfill reads both in one pass. Values
// are Protocol Buffers wire-format messages written with protowire behind a
// format byte (package internal/wire); rows stored as JSON by earlier versions stay
// readable. Tables carry bloom filters for the point reads of puts and
// lookups by id.
//
// The bus keeps each message under ("M" topic partition offset), commits
// concurrent publishes as one synced batch from a single writer goroutine and
// wakes fetchers through a per-partition channel closed on each commit.
//
// The spool keeps messages under ("S" sequence) in arrival order and replays
// them to the real bus oldest first, deleting each batch once the bus has it.
package pebble
