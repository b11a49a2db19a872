package tapline

import (
	"context"
	"net/url"
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

// RawStore keeps raw hits and events for the retention of their app, and
// conversions forever. Lookups by time return rows whose Time lies in
// [from, to], newest first. Single-row lookups return an *Error with code
// ENOTFOUND when there is no such row.
type RawStore interface {
	// PutHit stores h unless a hit with its (AppID, ID) is stored already,
	// and returns the stored hit (h, or the earlier one).
	PutHit(ctx context.Context, h *Hit) (*Hit, error)
	Hit(ctx context.Context, appID int64, id string) (*Hit, error)
	HitsByFingerprint(ctx context.Context, appID int64, fingerprint string, from, to time.Time) ([]*Hit, error)
	HitsByAdID(ctx context.Context, appID int64, adID string, from, to time.Time) ([]*Hit, error)

	// PutEvent stores e unless an event with its (AppID, ID) is stored
	// already, and returns the stored event (e, or the earlier one).
	// Installs are indexed by fingerprint, by advertising id and by the
	// hit id in their referrer.
	PutEvent(ctx context.Context, e *Event) (*Event, error)
	Event(ctx context.Context, appID int64, id string) (*Event, error)
	InstallsByFingerprint(ctx context.Context, appID int64, fingerprint string, from, to time.Time) ([]*Event, error)
	InstallsByAdID(ctx context.Context, appID int64, adID string, from, to time.Time) ([]*Event, error)
	InstallsByReferrerHit(ctx context.Context, appID int64, hitID string) ([]*Event, error)

	// PutConversion creates or replaces the conversion with c's (AppID, ID),
	// guarding it against concurrent changes by another matcher: c must
	// follow what is stored (see Follows). Otherwise it stores nothing and
	// returns ECONFLICT, and the caller reloads the conversion and decides
	// again.
	PutConversion(ctx context.Context, c *Conversion) error
	Conversion(ctx context.Context, appID int64, id string) (*Conversion, error)
	ConversionByInstall(ctx context.Context, appID int64, installID string) (*Conversion, error)
	// ConversionsByHit returns the conversions whose current HitID is hitID.
	ConversionsByHit(ctx context.Context, appID int64, hitID string) ([]*Conversion, error)

	// DeleteBefore drops the app's raw hits and events whose Time is before
	// t, without scanning them. Conversions stay.
	DeleteBefore(ctx context.Context, appID int64, t time.Time) error

	// Sync makes every write made so far durable. A store may buffer puts
	// until then (the embedded one does, to keep fsync off the per-record
	// path); the matcher syncs before it stores the offsets past them.
	Sync(ctx context.Context) error

	Close() error
}
