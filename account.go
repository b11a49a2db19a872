package tapline

import (
	"context"
	"math"
	"strconv"
	"strings"
	"time"
)

// Default attribution settings of an app.
const (
	DefaultClickWindow       = 7 * 24 * time.Hour
	DefaultFingerprintWindow = 24 * time.Hour
	// DefaultFingerprintMinScore is chosen from the precision/recall
	// curve `make bench` prints over the threshold, by the rule: the
	// lowest threshold, in quarters, at which, on the default population,
	// precision reaches 0.95 and fingerprint-only precision 0.90 (the
	// most recall those allow): 2.5 and 2.25 in the two runs of
	// 2026-12-02, of which the higher is kept.
	DefaultFingerprintMinScore = 2.5
	// MaxFingerprintMinScore bounds an app's FingerprintMinScore either
	// way: past it no fingerprint match, or every one, is credited.
	MaxFingerprintMinScore = 20.0
	DefaultLatenessHorizon = 24 * time.Hour
	DefaultRetention       = 60 * 24 * time.Hour
	// DefaultReengagementWindow bounds how long after a tap on a
	// re-engagement link an open of the installed app is credited to it
	// (see App.ReengagementWindow).
	DefaultReengagementWindow = 7 * 24 * time.Hour
	// DefaultReinstallWindow bounds how long after a device's earlier
	// install a new install from it is a reinstall (see
	// App.ReinstallWindow). It equals DefaultRetention: the earlier
	// install is looked up among the raw rows, which live that long.
	DefaultReinstallWindow = 60 * 24 * time.Hour
)

// Account is a customer of tapline. Its Name appears in the Tapstream SDK
// URLs (POST /{account}/event/{name}) and is unique. The people who log in
// to it are its Users.
type Account struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// App is one mobile app of an account, with its SDK credentials and its
// attribution settings.
type App struct {
	ID        int64  `json:"id"`
	AccountID int64  `json:"account_id"`
	Name      string `json:"name"`

	// SDKSecret authenticates the Tapstream SDK form protocol; SDKKey is the
	// bearer token of the JSON batch API.
	SDKSecret string `json:"sdk_secret"`
	SDKKey    string `json:"sdk_key"`

	// Store destinations used by links that do not override them.
	IOSURL     string `json:"ios_url"`
	AndroidURL string `json:"android_url"`
	WebURL     string `json:"web_url"`

	// ClickWindow bounds deterministic matches (hit id in the install
	// referrer, advertising id); FingerprintWindow bounds fingerprint
	// matches; LatenessHorizon is how long after an install a late hit may
	// still claim it; Retention is how long raw hits and events are kept.
	ClickWindow       time.Duration `json:"click_window"`
	FingerprintWindow time.Duration `json:"fingerprint_window"`
	LatenessHorizon   time.Duration `json:"lateness_horizon"`
	Retention         time.Duration `json:"retention"`
	// FingerprintMinScore is the decision score (fingerprint.Decide) the
	// best fingerprint candidate must reach to be credited; lower, the
	// install is organic. 0 means DefaultFingerprintMinScore; a lenient
	// app sets a negative one.
	FingerprintMinScore float64 `json:"fingerprint_min_score"`

	// Fraud is what the matcher does about each fraud signal it finds
	// on the tap an install is credited to, with the rules' thresholds.
	Fraud FraudPolicy `json:"fraud"`
	// ReengagementWindow bounds re-engagements: an open of an installed
	// app this long after a tap on a re-engagement link (same
	// advertising id) is credited to the tap; matched by fingerprint, the
	// shorter of it and FingerprintWindow applies.
	ReengagementWindow time.Duration `json:"reengagement_window"`
	// ReinstallWindow bounds reinstalls: an install from a device whose
	// earlier install (same advertising id, vendor id or install id) was
	// at most this long before is a reinstall, counted apart from
	// installs. Only installs still in the raw store (Retention) are
	// found.
	ReinstallWindow time.Duration `json:"reinstall_window"`
	// ReattributeReinstalls credits a reinstall to the tap that matches
	// it, as an install would be; when false (the default) a reinstall
	// keeps the attribution of the device's earlier install.
	ReattributeReinstalls bool `json:"reattribute_reinstalls"`

	// AppStoreID is the app's App Store id (the 525463029 of
	// apps.apple.com/app/id525463029), 0 when not set. SKAdNetwork and
	// AdAttributionKit postbacks name their app by it (app-id), so the
	// collector files them under this app; no two apps share one.
	AppStoreID int64 `json:"app_store_id,omitempty"`
	// ConversionSchema labels the app's conversion values in the
	// SKAdNetwork reports.
	ConversionSchema ConversionSchema `json:"conversion_schema"`

	CreatedAt time.Time `json:"created_at"`
}

// SetDefaults fills zero attribution and fraud settings with the
// defaults.
func (a *App) SetDefaults() {
	a.Fraud.SetDefaults()
	if a.ClickWindow == 0 {
		a.ClickWindow = DefaultClickWindow
	}
	if a.FingerprintWindow == 0 {
		a.FingerprintWindow = DefaultFingerprintWindow
	}
	if a.LatenessHorizon == 0 {
		a.LatenessHorizon = DefaultLatenessHorizon
	}
	if a.Retention == 0 {
		a.Retention = DefaultRetention
	}
	if a.ReengagementWindow == 0 {
		a.ReengagementWindow = DefaultReengagementWindow
	}
	if a.ReinstallWindow == 0 {
		a.ReinstallWindow = DefaultReinstallWindow
	}
	if a.FingerprintMinScore == 0 {
		a.FingerprintMinScore = DefaultFingerprintMinScore
	}
}

// Link is a tracking link: GET /l/{Slug} redirects to the destination for
// the visitor's platform and records a hit.
type Link struct {
	ID    int64  `json:"id"`
	AppID int64  `json:"app_id"`
	Slug  string `json:"slug"`
	Name  string `json:"name"`

	// Destinations; an empty one falls back to the app's.
	IOSURL     string `json:"ios_url,omitempty"`
	AndroidURL string `json:"android_url,omitempty"`
	WebURL     string `json:"web_url,omitempty"`

	// Params are query parameters every tap on the link carries, as if
	// its URL had them (utm_source=…): the tap's own win.
	Params map[string]string `json:"params,omitempty"`
	// DeepLink is where in the app the link leads (a path or URL the app
	// understands), kept for deferred deep links.
	DeepLink string `json:"deep_link,omitempty"`
	// ArchivedAt is when the link was archived: off the lists, its taps
	// still redirected and counted (ads may still carry it); nil when not.
	ArchivedAt *time.Time `json:"archived_at,omitempty"`
	// Reengagement marks a link that brings people back to the app they
	// have installed: an open of the app after a tap on it, within the
	// app's ReengagementWindow, is a re-engagement credited to the tap
	// (see Reengagement). Its taps still lead to installs as any link's.
	Reengagement bool `json:"reengagement,omitempty"`

	// ClickWindow and FingerprintWindow, when set, replace the app's
	// windows for taps on this link (App.LinkWindows): a link of a
	// campaign whose installs come later, or sooner, than the app's
	// usual. 0 keeps the app's.
	ClickWindow       time.Duration `json:"click_window,omitempty"`
	FingerprintWindow time.Duration `json:"fingerprint_window,omitempty"`

	CreatedAt time.Time `json:"created_at"`
}

// Bounds of a link's Params.
const (
	MaxLinkParams     = 20
	MaxLinkParamKey   = 64
	MaxLinkParamValue = 256
)

// MaxLinkWindow bounds a link's own ClickWindow and FingerprintWindow,
// which are at least a second when set.
const MaxLinkWindow = 90 * 24 * time.Hour

// LinkWindows returns the click and fingerprint windows in force for taps
// on link l: each the link's own when it sets one, else the app's. A nil
// l (a link not known) has the app's.
func (a *App) LinkWindows(l *Link) (click, fingerprint time.Duration) {
	click, fingerprint = a.ClickWindow, a.FingerprintWindow
	if l != nil && l.ClickWindow > 0 {
		click = l.ClickWindow
	}
	if l != nil && l.FingerprintWindow > 0 {
		fingerprint = l.FingerprintWindow
	}
	return click, fingerprint
}

// Destination returns the URL a visitor on platform p is sent to: the link's
// own, else the app's, else the web fallback.
func (l *Link) Destination(app *App, p Platform) string {
	pick := func(urls ...string) string {
		for _, u := range urls {
			if u != "" {
				return u
			}
		}
		return ""
	}
	switch p {
	case PlatformIOS:
		return pick(l.IOSURL, app.IOSURL, l.WebURL, app.WebURL)
	case PlatformAndroid:
		return pick(l.AndroidURL, app.AndroidURL, l.WebURL, app.WebURL)
	default:
		return pick(l.WebURL, app.WebURL)
	}
}

// APIToken is a read-only key to an account's reporting API, for the
// customer's own scripts. Its secret is shown once, when made, and kept
// only as a hash. A token belongs to the account, not to the owner who made
// it: it outlives that user's removal and password changes, until revoked.
type APIToken struct {
	ID         int64      `json:"id"`
	AccountID  int64      `json:"account_id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"` // the secret's first characters, to tell tokens apart
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// APITokenPrefix starts every API token's secret.
const APITokenPrefix = "tl_"

// AccountService manages accounts, apps, links, API tokens and, through
// UserService, the users who log in. Lookups return an *Error with code
// ENOTFOUND when nothing matches; creates return ECONFLICT for a taken name,
// slug or key and EINVALID for bad fields.
type AccountService interface {
	UserService

	// CreateAccount creates account a with its first user, owner (its
	// Email set; its Role becomes RoleOwner), whose password is password.
	CreateAccount(ctx context.Context, a *Account, owner *User, password string) error
	AccountByName(ctx context.Context, name string) (*Account, error)

	// CreateApp fills in SDKSecret and SDKKey when empty and applies
	// defaults to the attribution settings.
	CreateApp(ctx context.Context, a *App) error
	App(ctx context.Context, id int64) (*App, error)
	AppsByAccount(ctx context.Context, accountID int64) ([]*App, error)
	// AllApps returns every app of every account, for housekeeping.
	AllApps(ctx context.Context) ([]*App, error)
	AppBySDKKey(ctx context.Context, key string) (*App, error)
	// AppBySecret returns the app of the named account whose SDK secret
	// is secret: ENOTFOUND for an unknown account, EFORBIDDEN for a wrong
	// secret.
	AppBySecret(ctx context.Context, account, secret string) (*App, error)
	// AppBySDKSecret returns the app whose SDK secret is secret, for the
	// Tapstream SDK calls that name no account (the timeline lookups):
	// when several apps of one account share it, the one AppBySecret
	// picks (the oldest). EFORBIDDEN for an unknown secret and for one
	// that apps of several accounts share (no answer could keep their
	// data apart).
	AppBySDKSecret(ctx context.Context, secret string) (*App, error)
	// AppByAppStoreID returns the app whose AppStoreID is id, or
	// ENOTFOUND.
	AppByAppStoreID(ctx context.Context, id int64) (*App, error)
	// UpdateApp stores a's settings; an AppStoreID another app has is
	// ECONFLICT.
	UpdateApp(ctx context.Context, a *App) error

	CreateLink(ctx context.Context, l *Link) error
	// UpdateLink stores l's name, destinations, Params, DeepLink,
	// Reengagement, windows and ArchivedAt (nil unarchives); the slug and
	// app stay: ads carry the URL.
	UpdateLink(ctx context.Context, l *Link) error
	// Link returns the link with id, or ENOTFOUND.
	Link(ctx context.Context, id int64) (*Link, error)
	LinkBySlug(ctx context.Context, slug string) (*Link, error)
	LinksByApp(ctx context.Context, appID int64) ([]*Link, error)

	// CreateAPIToken makes a token for the account and returns it with
	// its secret, which is not kept.
	CreateAPIToken(ctx context.Context, accountID int64, name string) (*APIToken, string, error)
	// APITokens lists the account's tokens, revoked ones too, newest first.
	APITokens(ctx context.Context, accountID int64) ([]*APIToken, error)
	// RevokeAPIToken ends the account's token id; ENOTFOUND when the
	// account has no such token.
	RevokeAPIToken(ctx context.Context, accountID, id int64) error
	// AccountByAPIToken returns the account of a live token's secret, or
	// EUNAUTHORIZED.
	AccountByAPIToken(ctx context.Context, secret string) (*Account, error)
}

// ParseWindow reads a window: a Go duration ("24h", "90m"), or whole days
// as "7d"; at least a second. The error is EINVALID, naming field.
func ParseWindow(field, s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var d time.Duration
	var err error
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var days int64
		days, err = strconv.ParseInt(n, 10, 64)
		if err == nil && (days < 0 || days > int64(math.MaxInt64/(24*time.Hour))) {
			err = strconv.ErrRange // would overflow time.Duration into some other window
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d < time.Second {
		return 0, Errorf(EINVALID, "%s: %q is not a duration of a second or more, such as \"7d\", \"24h\" or \"90m\"", field, s)
	}
	return d, nil
}
