// Package matcher consumes hits and events from the bus, keeps them in the
// raw store, joins installs to the hits that caused them, writes
// conversions, and applies the resulting fact deltas to the fact store
// together with its consumed offsets, in one transaction per flush.
//
// # Matching
//
// For an install (first open) the matcher takes, in order:
//
//  1. the hit whose id the Play install referrer carries, within the app's
//     click window;
//  2. the newest hit with the same advertising id (IDFA or GAID), within the
//     click window, unless the device limits ad tracking;
//  3. the newest hit with the same fingerprint whose device attributes are
//     compatible and that no other install has claimed, within the
//     fingerprint window;
//
// else the install is organic. Later events of the same install id inherit
// its attribution. A hit that arrives after its install (out of order, or
// through another partition) still claims it when it would have won, as
// long as it is consumed within the app's lateness horizon of the install:
// the conversion is re-pointed and compensating fact deltas move the install
// from the old attribution to the new one.
//
// # Re-engagements and reinstalls
//
// An install from a device that installed the app within its reinstall
// window (same usable advertising id, same IDFV, or a second install event
// of one install id) is a reinstall (reinstall.go): counted apart, keeping
// the earlier install's attribution unless the app re-attributes
// reinstalls. An installation's first open after a tap on a re-engagement
// link, within the re-engagement window, matched by advertising id else by
// fingerprint, is a re-engagement credited to the tap (reengage.go), stored
// keyed by the open with the position that made it; a tap consumed after
// the open credits it by advertising id. See docs/reengagement.md.
//
// # Exactly once
//
// Each partition is consumed in order from the offset stored with the facts.
// A record's deltas and its partition's next offset enter the aggregator
// together, and a flush writes a consistent snapshot of both in one
// transaction, so after a crash the matcher resumes exactly after the last
// record whose deltas were stored. Raw rows may be ahead of the facts after a
// crash; replays are recognised by the bus position stored on each row
// (Hit.Source, Event.Source, Conversion.History, Reengagement.By) and emit the same deltas
// again instead of matching anew, while a resent hit or event (same id,
// another position) is dropped as a duplicate.
package matcher
