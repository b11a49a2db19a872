package tapline

import (
	"context"
	"net/url"
	"strings"
	"time"
)

// ReferrerHitParam is the parameter that carries the hit id inside the Play
// Store install referrer; the collector adds it to Android destinations.
const ReferrerHitParam = "tapline_hit"

// ReferrerHitID returns the hit id carried in the event's install referrer,
// or "". The referrer is the decoded value of the Play Store URL's referrer
// parameter, itself a query string such as "utm_source=x&tapline_hit=ID"; a
// referrer that is still URL-encoded as a whole is accepted too.
func (e *Event) ReferrerHitID() string {
	r := e.Referrer
	if r == "" {
		return ""
	}
	for range 2 {
		if q, err := url.ParseQuery(r); err == nil {
			if id := q.Get(ReferrerHitParam); id != "" {
				return id
			}
		}
		u, err := url.QueryUnescape(r)
		if err != nil || u == r {
			break
		}
		r = u
	}
	return ""
}

// MaxLookupRows bounds the rows a lookup by time returns: the newest ones.
// A busy network (a carrier's NAT address, a device tapping again and
// again) can hold thousands of taps in a fingerprint window; every install
// from it would read and weigh them all, and one such network could hold
// up a matcher. Past a few hundred taps on one network no fingerprint
// decision tells one device from the others anyway.
const MaxLookupRows = 256

// RawStore keeps raw hits and events for the retention of their app, and
// conversions forever. Lookups by time (HitsByFingerprint, InstallsByAdID,
// …) return rows whose Time lies in [from, to], newest first, at most
// MaxLookupRows of them; the row
// scans (ScanHitRows, ScanEventRows) go through [from, to) in the store's
// row order. Single-row lookups return an *Error with code ENOTFOUND when
// there is no such row. A closed store answers EUNAVAILABLE.
type RawStore interface {
	// PutHit stores h unless a hit with its (AppID, ID) is stored already,
	// and returns the stored hit (h, or the earlier one).
	PutHit(ctx context.Context, h *Hit) (*Hit, error)
	Hit(ctx context.Context, appID int64, id string) (*Hit, error)
	// HitAt returns the hit id as Hit does, told the Time it was stored
	// with (a conversion's HitTime), which lets a store read it without
	// searching; a wrong or zero at still finds it, more slowly.
	HitAt(ctx context.Context, appID int64, id string, at time.Time) (*Hit, error)
	HitsByFingerprint(ctx context.Context, appID int64, fingerprint string, from, to time.Time) ([]*Hit, error)
	HitsByAdID(ctx context.Context, appID int64, adID string, from, to time.Time) ([]*Hit, error)

	// ScanHitRows calls fn with each of the app's visible hits whose Time
	// lies in [from, to), in the store's row order (see RowPos), starting
	// after the row at after (the zero RowPos: from the first). The store
	// reads a bounded batch of rows at a time and holds nothing of the
	// scan while fn runs, so fn may take its time and may use the store;
	// fn must not keep h after it returns. An error from fn stops the scan
	// and is returned, as is ctx's.
	ScanHitRows(ctx context.Context, appID int64, from, to time.Time, after RowPos, fn func(h *Hit) error) error

	// PutEvent stores e unless an event with its (AppID, ID) is stored
	// already, and returns the stored event (e, or the earlier one).
	// Installs are indexed by fingerprint, by advertising id, by vendor id
	// (IDFV) and by the hit id in their referrer; every event with an InstallID is indexed
	// by it (EventsByInstall, ScanInstallations).
	PutEvent(ctx context.Context, e *Event) (*Event, error)
	Event(ctx context.Context, appID int64, id string) (*Event, error)
	InstallsByFingerprint(ctx context.Context, appID int64, fingerprint string, from, to time.Time) ([]*Event, error)
	InstallsByAdID(ctx context.Context, appID int64, adID string, from, to time.Time) ([]*Event, error)
	InstallsByReferrerHit(ctx context.Context, appID int64, hitID string) ([]*Event, error)
	// InstallsByVendorID returns the app's installs whose Device.IDFV is
	// idfv, as stored, with Time in [from, to], newest first.
	InstallsByVendorID(ctx context.Context, appID int64, idfv string, from, to time.Time) ([]*Event, error)
	// ScanEventRows is ScanHitRows for events, by their Time.
	ScanEventRows(ctx context.Context, appID int64, from, to time.Time, after RowPos, fn func(e *Event) error) error

	// PutConversion creates or replaces the conversion with c's (AppID, ID),
	// guarding it against concurrent changes by another matcher: c must
	// follow what is stored (see Follows). Otherwise it stores nothing and
	// returns ECONFLICT, and the caller reloads the conversion and decides
	// again.
	PutConversion(ctx context.Context, c *Conversion) error
	Conversion(ctx context.Context, appID int64, id string) (*Conversion, error)
	// ConversionByInstall and ConversionsByHit may return conversions
	// without their Decision (the embedded store's indexes leave it out):
	// Conversion reads it.
	ConversionByInstall(ctx context.Context, appID int64, installID string) (*Conversion, error)
	// ConversionsByHit returns the conversions whose current HitID is hitID.
	ConversionsByHit(ctx context.Context, appID int64, hitID string) ([]*Conversion, error)

	// PutReengagement stores r unless a re-engagement with its (AppID,
	// ID) is stored already, or one credits its tap (AppID, HitID): a tap
	// is credited with one re-engagement. It returns the re-engagement
	// that stands, r or the earlier one; one with another ID means the
	// tap is taken. Re-engagements are kept forever.
	PutReengagement(ctx context.Context, r *Reengagement) (*Reengagement, error)
	// Reengagement returns the app's re-engagement id, or ENOTFOUND.
	Reengagement(ctx context.Context, appID int64, id string) (*Reengagement, error)

	// EventsByInstall returns the app's stored events of the installation
	// installID, oldest first (see CompareEvents), each with at least the
	// fields of Event.Installed. Events without an
	// InstallID belong to no installation and are not indexed: an empty
	// installID returns none.
	EventsByInstall(ctx context.Context, appID int64, installID string) ([]*Event, error)

	// ScanInstallations calls fn once for each installation of the app
	// whose key lies in r, (r.Start, r.End], in ascending key order, with
	// every stored event of the installation, oldest first (with at least
	// the fields of Event.Installed), and its conversion. An
	// installation's key is its place on the int64 ring: a hash of its
	// install id in the embedded store, the Murmur3 token of its partition
	// in Cassandra. Installations whose keys collide each come once, one
	// after the other. fn is never called concurrently within one scan;
	// ranges are scanned in parallel by calling ScanInstallations once per
	// range (see SplitRing). The store holds one installation at a time,
	// never the range. An error from fn stops the scan and is returned, as
	// is ctx's. fn must not keep inst or its events after it returns: the
	// store may reuse their memory for the next installation.
	//
	// To resume an interrupted scan, call it again with r.Start set to the
	// last key checkpointed. Installations with that very key are then
	// skipped, so a caller checkpoints a key only once it has finished
	// every installation with that key: once fn has seen a greater key, or
	// the range has ended.
	ScanInstallations(ctx context.Context, appID int64, r ScanRange, fn func(key int64, inst *Installation) error) error

	// FunnelState returns the funnel state of the app's installation
	// installID, or ENOTFOUND. A state expires like a raw row, counted from
	// its last write: Cassandra by its 60-day TTL, the embedded store when
	// DeleteBefore's cut-off passes the write.
	FunnelState(ctx context.Context, appID int64, installID string) (*FunnelState, error)
	// PutFunnelState creates or replaces the funnel state of s's (AppID,
	// InstallID), guarding it against concurrent changes by another
	// matcher: s must follow what is stored (see FunnelState.Follows), so
	// of two writers that follow the same stored state one wins. Otherwise
	// it stores nothing and returns ECONFLICT, and the caller reloads the
	// state and decides again. Writing the stored history again is a
	// retry and succeeds.
	PutFunnelState(ctx context.Context, s *FunnelState) error

	// EraseDevice erases one device's raw rows (see Erasure): it deletes
	// the hits carrying one of e.AdIDs and every event of e.InstallIDs and
	// of the installations whose install carries one of e.AdIDs, rows
	// hidden by DeleteBefore included, with every index entry naming them;
	// it strips the installations' conversions and e.ConversionIDs of their
	// personal fields (Conversion.Erase), keeping their attribution and
	// index entries, and strips the hits those conversions credited
	// (EraseHit), dropping the hits' fingerprint and advertising id index
	// entries. It is idempotent: erasing again finds nothing more. It
	// returns what it removed, and sets e.FoundConversions.
	EraseDevice(ctx context.Context, e *Erasure) (ErasureCounts, error)

	// DeleteBefore drops the app's raw hits and events whose Time is before
	// t, without scanning them. Conversions stay.
	DeleteBefore(ctx context.Context, appID int64, t time.Time) error

	// Sync makes every write made so far durable. A store may buffer puts
	// until then (the embedded one does, to keep fsync off the per-record
	// path); the matcher syncs before it stores the offsets past them.
	Sync(ctx context.Context) error

	Close() error
}

// RowPos is the place of a raw hit or event in a store's row order
// (ScanHitRows, ScanEventRows): the row's Time and ID, exactly as stored.
// Each store orders an app's rows by a key it derives from these two
// alone, the embedded store by the week bucket of Time and then ID,
// Cassandra by the Murmur3 token of the row's partition (app, ID) and then
// ID, so a scan resumed after the last row it delivered delivers each row
// it had not delivered yet once, and none again, whether or not that row
// still exists. Rows stored or deleted meanwhile come or not as their
// place falls before or after the position. A RowPos without an ID (the
// zero RowPos) comes before every row.
type RowPos struct {
	Time time.Time
	ID   string
}

// IsZero reports whether p has no ID: the start, before every row.
func (p RowPos) IsZero() bool { return p.ID == "" }

// CompareEvents orders events oldest first: by Time, then by ID. It is the
// order of an installation's events (EventsByInstall, Installation.Events)
// and of a funnel path's events; use it with slices.SortFunc.
func CompareEvents(a, b *Event) int {
	if c := a.Time.Compare(b.Time); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}
