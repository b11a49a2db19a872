package tapline

import (
	"maps"
	"strings"
	"time"
)

// Platform is the kind of device a hit or event came from.
type Platform string

// Platforms.
const (
	PlatformIOS     Platform = "ios"
	PlatformAndroid Platform = "android"
	PlatformWeb     Platform = "web" // anything else: desktop, unknown
)

// Hit is one tap on a tracking link (or one load of a hit pixel).
type Hit struct {
	ID     string    `json:"id"`
	Time   time.Time `json:"time"`
	AppID  int64     `json:"app_id"`
	LinkID int64     `json:"link_id"`

	// IP is the client address, taken from X-Forwarded-For only when the
	// request came through a trusted proxy.
	IP             string            `json:"ip"`
	UserAgent      string            `json:"user_agent,omitempty"`
	Referer        string            `json:"referer,omitempty"`
	AcceptLanguage string            `json:"accept_language,omitempty"`
	ClientHints    map[string]string `json:"client_hints,omitempty"` // Sec-CH-UA-* headers, lower-case names
	Params         map[string]string `json:"params,omitempty"`       // the link's query parameters

	// AdID is an advertising id (IDFA or GAID) filled in by the ad network
	// through a URL macro, when present.
	AdID string `json:"ad_id,omitempty"`

	// Platform, OSVersion and Model are what the User-Agent and client
	// hints reveal of the device; OSVersion and Model are "" where they
	// hide it (Chrome's reduced User-Agent, Safari's frozen one).
	Platform  Platform `json:"platform"`
	OSVersion string   `json:"os_version,omitempty"`
	Model     string   `json:"model,omitempty"`

	Fingerprint string `json:"fingerprint"`

	// Bot, when set, says why the request is no tap although it got its
	// redirect: "head", "prefetch", or the name of the link previewer or
	// crawler (fingerprint.Bot). Such a hit is counted apart (FactBotHits)
	// and never credited with an install.
	Bot string `json:"bot,omitempty"`

	// Source is the bus position the hit was first consumed at; the
	// matcher sets it and uses it to tell a replay from a resend.
	Source string `json:"source,omitempty"`
}

// Reasons a Hit is no tap, besides a previewer's or crawler's name.
const (
	BotHead        = "head"         // a HEAD request: a link checker
	BotPrefetch    = "prefetch"     // a browser's prefetch or preview load
	BotRateLimited = "rate-limited" // its address tapped faster than people do
)

// ReferrerNamable reports whether an install referrer can name h: the
// collector puts a hit's id into the Play Store's referrer only when it
// redirects a tap from Android, so no real install names any other.
func (h *Hit) ReferrerNamable() bool { return h.Platform == PlatformAndroid }

// Previewer reports whether h came from a link previewer or crawler: no
// person's device ever followed it. A HEAD request, a prefetch or a
// rate-limited tap may have come from the person who installs (a prefetch's
// redirect can be reused when they tap), so the install referrer naming
// one still credits it; nothing else does.
func (h *Hit) Previewer() bool {
	switch h.Bot {
	case "", BotHead, BotPrefetch, BotRateLimited:
		return false
	}
	return true
}

// adIDParams are the query parameters ad networks fill with an advertising
// id through their URL macros.
var adIDParams = map[string]bool{
	"idfa": true, "ifa": true, "gaid": true, "aaid": true, "adid": true,
	"advertising_id": true, "google_aid": true, "gps_adid": true,
}

// IsAdIDParam reports whether the tap query parameter k carries an
// advertising id (any case).
func IsAdIDParam(k string) bool { return adIDParams[strings.ToLower(k)] }

// WithoutAdIDs returns params without the parameters that carry an
// advertising id: what may be kept past the raw rows' retention. It
// returns params itself when it has none.
func WithoutAdIDs(params map[string]string) map[string]string {
	var out map[string]string
	for k := range params {
		if IsAdIDParam(k) {
			if out == nil {
				out = maps.Clone(params)
			}
			delete(out, k)
		}
	}
	if out == nil {
		return params
	}
	return out
}
