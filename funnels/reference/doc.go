// Package reference computes funnel results from exported raw data with SQL
// in an in-process DuckDB. It is the independent oracle that the streaming
// evaluator (package funnels), the backfill and the live matcher are
// compared against: it shares no code with them and follows
// docs/funnels.md ("What is counted" and "As of a handoff") literally.
//
// Go only loads the rows into tables and renders the query text from the
// funnel definition; every rule (the path, the tap taken from the
// attribution, the order of records, step and filter matching, the entry,
// the window, the walk in its three orders with exclusions, seconds,
// buckets, breakdown values and the handoff) is in the SQL of query.go.
//
// Where the page leaves room for more than one reading this package takes
// the most literal one:
//
//   - Numbers are read as Go's strconv.ParseFloat reads decimal numbers
//     (digit separators "1_000" included), without trimming spaces (" 5"
//     is not a number) and without ParseFloat's hexadecimal form ("0x1p4"
//     is not a decimal number).
//   - A position whose partition has no offset in the handoff, or that is
//     not "topic/partition/offset", is before it (the page says so).
//   - The installations are those of the app's stored events (all of them,
//     not only those before the handoff); as of a handoff an installation
//     whose events all come after it may still have a path: its tap.
//   - When several conversions name one installation, the earliest install
//     time (then the lowest conversion id) among those that exist (as of the
//     handoff) is the installation's conversion, as the raw stores'
//     ConversionByInstall choose.
//   - The tap record takes time, link and parameters from the hit; the link
//     breakdown takes the attribution's LinkID.
//   - Without a handoff, a conversion with an empty History is attributed as
//     its own Attribution says; as of any handoff it does not exist.
//   - Hits are not filtered by the handoff: the attribution as of the
//     handoff names the tap.
package reference
