package tapline

import "time"

// Reengagement is an open of an app already installed that followed a tap
// on a re-engagement link (Link.Reengagement) within the app's
// ReengagementWindow: the tap brought the person back. It is credited to
// the tap apart from the installation's own attribution, which it never
// changes, and is never an install. A tap is credited with at most one
// re-engagement, and an installation's first open after the tap is the
// only one that can be it. Like a conversion it is kept forever.
type Reengagement struct {
	// ID derives from the open event's ID (ReengagementID), so a replay
	// of the open finds it.
	ID        string    `json:"id"`
	AppID     int64     `json:"app_id"`
	EventID   string    `json:"event_id"`
	InstallID string    `json:"install_id"`
	OpenTime  time.Time `json:"open_time"`
	Platform  Platform  `json:"platform"`
	// Attribution is the tap credited: its Method is MethodAdID or
	// MethodFingerprint.
	Attribution
	// By is the bus position of the open that made it: a replay of that
	// record emits its facts again instead of matching anew.
	By string    `json:"by"`
	At time.Time `json:"at"`
	// Decision explains the match of the open to the tap.
	Decision *Decision `json:"decision,omitempty"`
}

// ReengagementID returns the id of the re-engagement of the open eventID.
func ReengagementID(eventID string) string { return "re-" + eventID }
