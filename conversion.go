package tapline

import "time"

// MatchMethod tells how an install was joined to a hit.
type MatchMethod string

// Match methods, strongest first.
const (
	MethodReferrer    MatchMethod = "referrer"       // hit id in the Play install referrer
	MethodAdID        MatchMethod = "advertising_id" // same IDFA or GAID on hit and install
	MethodFingerprint MatchMethod = "fingerprint"    // same IP and device attributes
	MethodOrganic     MatchMethod = "organic"        // no hit matched
)

// Attribution is the outcome of matching one install.
type Attribution struct {
	HitID   string      `json:"hit_id,omitempty"`
	LinkID  int64       `json:"link_id,omitempty"`
	Method  MatchMethod `json:"method"`
	HitTime time.Time   `json:"hit_time,omitzero"`
}

// Conversion records the attribution of one install. It is kept forever.
// Its ID derives from the install event's ID, so a replay rewrites the same
// conversion.
type Conversion struct {
	ID          string    `json:"id"`
	AppID       int64     `json:"app_id"`
	EventID     string    `json:"event_id"`
	InstallID   string    `json:"install_id"`
	InstallTime time.Time `json:"install_time"`
	Platform    Platform  `json:"platform"`
	Fingerprint string    `json:"fingerprint"`
	AdID        string    `json:"ad_id,omitempty"`
	Attribution

	// ClickToInstall is InstallTime minus HitTime for a matched install.
	ClickToInstall time.Duration `json:"click_to_install,omitempty"`

	// Previous is the attribution this one replaced when a late hit
	// re-attributed the install, and ChangedBy the bus position of the
	// record that made the last change; together they let a replay of that
	// record emit the same compensating fact deltas again.
	Previous  *Attribution `json:"previous,omitempty"`
	ChangedBy string       `json:"changed_by"`
	UpdatedAt time.Time    `json:"updated_at"`
}

// ConversionID returns the conversion id for the install event eventID.
func ConversionID(eventID string) string { return "cv-" + eventID }
