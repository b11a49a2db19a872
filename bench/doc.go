// Package bench runs tapline's benchmark (`make bench`): it starts what it
// needs on loopback (the all-in-one tapline binary, nginx, a bare Go 302
// server of bench/cmd/go302, the "Tapstream 1.0" baseline of package
// bench/tapstream1), drives them with package loadgen, and reports one
// table plus machine-readable results:
//
//   - redirect: requests/s, latency and CPU per request of GET /l/{slug}
//     on tapline, on tapline's collector alone (no matching), on nginx
//     answering `return 302`, on a bare Go net/http server answering 302,
//     and on the baseline, closed loop with the same workers and
//     keep-alive;
//   - SDK ingest: accepted events/s (on the bus, durable) and latency of
//     the Tapstream form protocol and of JSON batches of ten;
//   - matcher: messages/s draining a bus filled before the process starts,
//     with no funnels and with ten live funnels, and
//     tap-to-conversion-visible-in-facts latency of probe installs under
//     the steady load of the accuracy run;
//   - accuracy: precision, recall and organic misattribution of tapline
//     against the workload's ground truth (read back from the raw store
//     after the process stops), beside the naive IP-only and IP plus exact
//     User-Agent matchers on the same data and windows;
//   - throughput and growth: the same workload replayed as fast as
//     possible at 1x, 4x and 16x data, on tapline until its facts are
//     complete and on the baseline (synchronous), with the time, the rate
//     and the peak memory (VmHWM) of each process;
//   - funnel backfill: a raw store of a 60-day workload (5 million raw
//     rows: events, hits, conversions) counted in one 5-step funnel with an
//     exclusion and a breakdown by "tapline funnels backfill" as a separate
//     process, at a quarter of the rows and at all of them (growth, peak
//     memory), against one PostgreSQL query with window functions over the
//     same rows in plain tables and against DuckDB (package
//     funnels/reference); the three results must be identical, or the run
//     fails.
//
// Machines here are small and shared, so the ratios measured in one run
// matter more than absolute numbers.
package bench
