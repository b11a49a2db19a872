// Package tapstream1 is the "Tapstream 1.0" baseline of the benchmark: the
// straightforward design tapline replaces. It serves the same routes as
// tapline's collector (tracking links, the Tapstream SDK form protocol and
// the JSON batch API) but does all the work inside the request: every hit
// and event is inserted as a PostgreSQL row, an install is matched with one
// SQL query over the hits (Play referrer hit id, then advertising id, then
// newest unconverted hit from the same IP and platform within the window),
// and the hourly fact rows are upserted, all in one transaction before the
// answer.
//
// It is deliberately minimal (no caches, no batching, no User-Agent
// parsing beyond the platform) but indexed as a careful 1.0 would be.
package tapstream1
