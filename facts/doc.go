// Package facts turns matched hits, events and conversions into deltas of
// the hourly fact tables, and aggregates deltas in memory until the matcher
// flushes them to the fact store together with its consumed offsets.
//
// Every delta is keyed by the UTC hour of the record's own time (the hit's
// time, the event's time, the install's time for installs and
// conversions), so the dashboard can roll hours up into days in any time
// zone. Re-attributing an install emits a compensating pair: minus the old
// attribution, plus the new one, in the install's hour. Funnel deltas are
// keyed by the hour the installation entered the funnel (FunnelOutcome),
// and a changed outcome is likewise minus the old, plus the new.
package facts
