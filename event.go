package tapline

import "time"

// EventKind classifies events for matching and facts.
type EventKind string

// Event kinds. An install is the first open of an app on a device; only
// installs are matched to hits, later events inherit their install's
// attribution.
const (
	KindInstall  EventKind = "install"
	KindOpen     EventKind = "open"
	KindPurchase EventKind = "purchase"
	KindCustom   EventKind = "custom"
)

// Event is something an app reported through an SDK.
type Event struct {
	// ID identifies the event within its app; a resent ID is the same
	// event and is counted once. The JSON API takes it from the client;
	// the Tapstream protocol derives it from the request.
	ID         string    `json:"id"`
	AppID      int64     `json:"app_id"`
	Name       string    `json:"name"`
	Kind       EventKind `json:"kind"`
	Time       time.Time `json:"time"`        // on the device
	ReceivedAt time.Time `json:"received_at"` // at the collector

	// InstallID identifies one installation of the app (the Tapstream
	// SDK's uuid, the JSON API's install_id).
	InstallID string `json:"install_id"`
	IP        string `json:"ip"`
	Device    Device `json:"device"`

	// Referrer is the Play install referrer, which carries the hit id of
	// the tap that led to the install.
	Referrer string            `json:"referrer,omitempty"`
	Revenue  *Revenue          `json:"revenue,omitempty"`
	Params   map[string]string `json:"params,omitempty"`
	Protocol string            `json:"protocol"` // "tapstream" or "v1"

	Fingerprint string `json:"fingerprint"`

	// Source is the bus position the event was first consumed at; the
	// matcher sets it and uses it to tell a replay from a resend.
	Source string `json:"source,omitempty"`

	// CountedUnder is the hit id of the attribution the matcher first
	// counted the event under ("" organic), so that a replay counts it
	// there again and a re-attribution knows what to move (see
	// AttributionChange.Moved); nil for an install event, counted under
	// its own match, and for events stored before tapline recorded it.
	CountedUnder *string `json:"counted_under,omitempty"`
}

// CountedBeforeInstall is the CountedUnder of an event counted before its
// installation's install was matched: organic, no hit's id.
const CountedBeforeInstall = "\x00before-install"

// Device describes the device an event came from, as the SDK reports it.
type Device struct {
	Platform        Platform `json:"platform"`
	OSVersion       string   `json:"os_version,omitempty"` // "17.4.1", "14"
	Model           string   `json:"model,omitempty"`      // "iPhone15,2", "Pixel 7"
	Vendor          string   `json:"vendor,omitempty"`
	Locale          string   `json:"locale,omitempty"`
	Resolution      string   `json:"resolution,omitempty"`
	AppVersion      string   `json:"app_version,omitempty"`
	IDFA            string   `json:"idfa,omitempty"`
	IDFV            string   `json:"idfv,omitempty"`
	GAID            string   `json:"gaid,omitempty"`
	LimitAdTracking bool     `json:"limit_ad_tracking,omitempty"`
}

// Installed returns what the raw store's index of events by installation
// keeps of e (EventsByInstall, ScanInstallations): the fields a funnel
// reads. The index is read for every event of every installation a funnel
// counts; the rest of the event is one Event(id) away.
func (e *Event) Installed() *Event {
	return &Event{
		ID:        e.ID,
		AppID:     e.AppID,
		Name:      e.Name,
		Kind:      e.Kind,
		Time:      e.Time,
		InstallID: e.InstallID,
		Device:    Device{Platform: e.Device.Platform},
		Revenue:   e.Revenue,
		Params:    e.Params,
		Source:    e.Source,

		CountedUnder: e.CountedUnder,
	}
}

// AdID returns the device's advertising id, IDFA or GAID, or "".
func (d *Device) AdID() string {
	if d.IDFA != "" {
		return d.IDFA
	}
	return d.GAID
}

// Revenue is money an event brought, in millionths of the currency unit.
type Revenue struct {
	Micros   int64  `json:"micros"`
	Currency string `json:"currency"` // ISO 4217, upper case
}

// ClampDeviceClock replaces the device time of an install or an open that
// lies more than bound away from its receive time (either way) by the
// receive time, and returns how far the device clock was off (receive time
// minus device time), or 0 when the time is kept or bound is not positive.
// Installs and opens are what taps are matched against: a phone whose
// clock runs hours behind would otherwise seem to install before the tap
// that led to it (or, ahead, outside the click window). Other events keep
// their device time, which may rightly lie hours back when an SDK sends
// what it queued offline.
func (e *Event) ClampDeviceClock(bound time.Duration) time.Duration {
	if bound <= 0 || e.ReceivedAt.IsZero() || (e.Kind != KindInstall && e.Kind != KindOpen) {
		return 0
	}
	skew := e.ReceivedAt.Sub(e.Time)
	if skew <= bound && skew >= -bound {
		return 0
	}
	e.Time = e.ReceivedAt
	return skew
}
