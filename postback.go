package tapline

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Postback is a server-to-server notification template of an app: when an
// install or event is attributed to a tap it applies to, tapline calls the
// ad network's URL so the network learns which of its taps converted.
//
// URL and Body hold macros in braces ({click_id}, {event_name},
// {revenue}, ...; see PostbackMacros); a name that is no built-in macro
// is the attributed tap's parameter of that name ({clickid} is the tap's
// clickid=...). Advertising ids and the device's address are personal
// data: they are filled in only when Fields allows them and the device does
// not limit ad tracking, and are empty otherwise.
//
// A postback of Kind PostbackKindWebhook is a customer's webhook instead:
// its URL gets the conversion and event as JSON (no macros, no template),
// for organic installs and re-attributions too, signed per the Standard
// Webhooks scheme with its Secrets (see package webhook).
type Postback struct {
	ID    int64 `json:"id"`
	AppID int64 `json:"app_id"`
	// Kind is PostbackKindNetwork (the default) or PostbackKindWebhook.
	Kind string `json:"kind"`
	// Network names the ad network: its deliveries share its limits and
	// its metrics.
	Network string `json:"network"`
	// Source, when set, limits the postback to taps whose utm_source
	// parameter equals it (case-insensitively); LinkIDs, when set, to taps
	// on those links. Both empty: every attributed tap of the app.
	Source  string  `json:"source,omitempty"`
	LinkIDs []int64 `json:"link_ids,omitempty"`
	// Events trigger it: PostbackInstall for an install attributed to a
	// tap, PostbackReengagement for an open credited to a tap on a
	// re-engagement link, an event name for events of that name, "kind:purchase" (any
	// EventKind) for every event of a kind. Events of an installation
	// count under its install's attribution.
	Events []string `json:"events"`
	// Method is GET or POST; Body and ContentType are a POST's.
	Method      string `json:"method"`
	URL         string `json:"url"`
	Body        string `json:"body,omitempty"`
	ContentType string `json:"content_type,omitempty"`
	// Fields allows personal-data macros: "idfa", "gaid", "ip". Not listed,
	// they render empty.
	Fields []string `json:"fields,omitempty"`
	// OnReattribution says what a late tap that takes an install from
	// another tap does: ReattributionSend sends this postback's install
	// notification for the new tap (when it applies to it);
	// ReattributionNone (the default) sends nothing.
	OnReattribution string `json:"on_reattribution,omitempty"`
	// Delivery limits: at most MaxConcurrent calls at once and
	// MaxPerSecond a second to this network (0: the defaults), each given
	// Timeout (0: DefaultPostbackTimeout).
	MaxConcurrent int           `json:"max_concurrent,omitempty"`
	MaxPerSecond  float64       `json:"max_per_second,omitempty"`
	Timeout       time.Duration `json:"timeout,omitempty"`
	Disabled      bool          `json:"disabled,omitempty"`
	// Secrets sign a webhook's calls, the current one first; during a
	// rotation the previous one signs too until PreviousSecretExpires.
	// Never shown after they are made.
	Secrets               []string   `json:"-"`
	PreviousSecretExpires *time.Time `json:"previous_secret_expires,omitempty"`
	CreatedAt             time.Time  `json:"created_at"`
}

// Kinds of postbacks.
const (
	PostbackKindNetwork = "network"
	PostbackKindWebhook = "webhook"
)

// WebhookRotationOverlap is how long a webhook's previous secret still
// signs after a rotation, for the customer to switch.
const WebhookRotationOverlap = 24 * time.Hour

// IsWebhook reports whether p is a customer's webhook.
func (p *Postback) IsWebhook() bool { return p.Kind == PostbackKindWebhook }

// Postback triggers and re-attribution behaviours.
const (
	PostbackInstall      = "install"
	PostbackReengagement = "reengagement"
	ReattributionNone    = "none"
	ReattributionSend    = "send"
)

// Postback defaults and bounds.
const (
	DefaultPostbackTimeout       = 10 * time.Second
	DefaultPostbackConcurrent    = 4
	DefaultPostbackPerSecond     = 50.0
	MaxPostbackURL               = 4096
	MaxPostbackBody              = 16 << 10
	MaxPostbackEvents            = 50
	PostbackDeliveryMaxAge       = 24 * time.Hour // retried this long, then dead
	PostbackPersonalFieldIDFA    = "idfa"
	PostbackPersonalFieldGAID    = "gaid"
	PostbackPersonalFieldAddress = "ip"
)

// PostbackMacros are the built-in macros of a postback's URL and body.
var PostbackMacros = []string{
	"click_id", "install_id", "conversion_id", "event_id", "event_name", "event_kind", "event_time",
	"install_time", "revenue", "currency", "link_id", "link_slug", "match_method", "platform",
	"idfa", "gaid", "ip", "idempotency_key", "reattributed",
}

// Validate checks p's fields and sets defaults.
func (p *Postback) Validate() error {
	switch p.Kind {
	case "":
		p.Kind = PostbackKindNetwork
	case PostbackKindNetwork:
	case PostbackKindWebhook:
		if p.Method != "" && !strings.EqualFold(p.Method, "POST") || p.Body != "" || len(p.Fields) > 0 {
			return Errorf(EINVALID, "webhook: a webhook is a POST of tapline's JSON, without method, body or personal-data fields")
		}
		p.Method, p.ContentType = "POST", "application/json"
		if p.Network == "" {
			p.Network = "webhook"
		}
		if p.OnReattribution == "" {
			p.OnReattribution = ReattributionSend
		}
	default:
		return Errorf(EINVALID, "kind: %q or %q", PostbackKindNetwork, PostbackKindWebhook)
	}
	p.Network = strings.TrimSpace(p.Network)
	if p.Network == "" || len(p.Network) > 100 {
		return Errorf(EINVALID, "network: required, at most 100 characters")
	}
	p.Method = strings.ToUpper(p.Method)
	switch p.Method {
	case "":
		p.Method = "GET"
	case "GET", "POST":
	default:
		return Errorf(EINVALID, "method: GET or POST, not %q", p.Method)
	}
	if len(p.URL) > MaxPostbackURL {
		return Errorf(EINVALID, "url: at most %d characters", MaxPostbackURL)
	}
	if strings.ContainsFunc(p.URL, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return Errorf(EINVALID, "url: spaces and control characters must be escaped")
	}
	// The template with its macros filled in must be an absolute http(s)
	// URL whose host is no macro's.
	const marker = "tapline-macro"
	u, err := url.Parse(ExpandMacros(p.URL, func(string, string) string { return marker }))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return Errorf(EINVALID, "url: want an absolute http or https URL, got %q", p.URL)
	}
	if strings.Contains(u.Host, marker) {
		return Errorf(EINVALID, "url: macros may not name the host")
	}
	if p.Method == "GET" && p.Body != "" {
		return Errorf(EINVALID, "body: only a POST has one")
	}
	if len(p.Body) > MaxPostbackBody {
		return Errorf(EINVALID, "body: at most %d bytes", MaxPostbackBody)
	}
	if p.Method == "POST" && p.ContentType == "" {
		p.ContentType = "application/json"
	}
	if p.Body != "" {
		// Macros are escaped for JSON or a form; any other body would take
		// tap parameters, which anyone can set on a link, as they come.
		ct := strings.ToLower(p.ContentType)
		if !strings.Contains(ct, "json") && !strings.Contains(ct, "x-www-form-urlencoded") {
			return Errorf(EINVALID, "content_type: a body template is JSON or application/x-www-form-urlencoded, not %q", p.ContentType)
		}
	}
	if len(p.Events) == 0 || len(p.Events) > MaxPostbackEvents {
		return Errorf(EINVALID, "events: between 1 and %d triggers", MaxPostbackEvents)
	}
	for _, e := range p.Events {
		if e == "" || len(e) > 100 {
			return Errorf(EINVALID, "events: an empty or over-long trigger %q", e)
		}
		if k, ok := strings.CutPrefix(e, "kind:"); ok {
			switch EventKind(k) {
			case KindInstall, KindOpen, KindPurchase, KindCustom:
			default:
				return Errorf(EINVALID, "events: unknown event kind in %q", e)
			}
		}
	}
	for _, f := range p.Fields {
		switch f {
		case PostbackPersonalFieldIDFA, PostbackPersonalFieldGAID, PostbackPersonalFieldAddress:
		default:
			return Errorf(EINVALID, "fields: %q is no personal-data field (idfa, gaid, ip)", f)
		}
	}
	switch p.OnReattribution {
	case "":
		p.OnReattribution = ReattributionNone
	case ReattributionNone, ReattributionSend:
	default:
		return Errorf(EINVALID, "on_reattribution: %q or %q", ReattributionNone, ReattributionSend)
	}
	if p.MaxConcurrent < 0 || p.MaxConcurrent > 100 {
		return Errorf(EINVALID, "max_concurrent: 0 (default) to 100")
	}
	if p.MaxPerSecond != 0 && (p.MaxPerSecond < 1 || p.MaxPerSecond > 10000) {
		return Errorf(EINVALID, "max_per_second: 0 (default) or 1 to 10000")
	}
	if p.Timeout < 0 || p.Timeout > time.Minute {
		return Errorf(EINVALID, "timeout: 0 (default) to one minute")
	}
	return nil
}

// Allows reports whether p allows the personal-data field f.
func (p *Postback) Allows(f string) bool { return slices.Contains(p.Fields, f) }

// ExpandMacros returns tmpl with each macro, a name of letters, digits, _, .
// and - in braces, replaced by value(name, prefix), prefix being the
// template before it. Other braces, as a JSON body's, are kept as they are.
func ExpandMacros(tmpl string, value func(name, prefix string) string) string {
	var b strings.Builder
	rest := tmpl
	for {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			b.WriteString(rest)
			return b.String()
		}
		n := 0
		for n < len(rest)-i-1 && isMacroByte(rest[i+1+n]) {
			n++
		}
		if n == 0 || i+1+n >= len(rest) || rest[i+1+n] != '}' {
			b.WriteString(rest[:i+1]) // a brace of the text
			rest = rest[i+1:]
			continue
		}
		b.WriteString(rest[:i])
		b.WriteString(value(rest[i+1:i+1+n], tmpl[:len(tmpl)-len(rest)+i]))
		rest = rest[i+2+n:]
	}
}

func isMacroByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
}

// DeliveryStatus is where a delivery stands.
type DeliveryStatus string

// Delivery statuses.
const (
	DeliveryPending   DeliveryStatus = "pending"   // waiting for its next attempt
	DeliveryDelivered DeliveryStatus = "delivered" // answered 2xx
	DeliveryDead      DeliveryStatus = "dead"      // refused (4xx) or out of retries
)

// Delivery is one rendered call to an ad network, written to the outbox in
// the matcher's flush transaction and sent by a sender, at least once.
// Key is its idempotency key, derived from what caused it (the postback,
// the conversion or event, the change): a replay of the same record writes
// the same key, which the outbox keeps once, and the receiver gets it in
// the Idempotency-Key header to drop a repeated call.
type Delivery struct {
	ID           int64          `json:"id"`
	Key          string         `json:"key"`
	AppID        int64          `json:"app_id"`
	PostbackID   int64          `json:"postback_id"`
	Network      string         `json:"network"`
	Trigger      string         `json:"trigger"` // the event name or "install"
	ConversionID string         `json:"conversion_id,omitempty"`
	EventID      string         `json:"event_id,omitempty"`
	Method       string         `json:"method"`
	URL          string         `json:"url"`
	ContentType  string         `json:"content_type,omitempty"`
	Body         []byte         `json:"body,omitempty"`
	Status       DeliveryStatus `json:"status"`
	Attempts     int            `json:"attempts"`
	// NextAttempt is when a pending delivery is tried next (a sender
	// holding it moves it past its lease first).
	NextAttempt time.Time `json:"next_attempt"`
	// LastCode is the last answer's HTTP status (0: none, as after a
	// timeout), LastError what went wrong, LastBody the start of the
	// answer's body.
	LastCode    int        `json:"last_code,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
	LastBody    string     `json:"last_body,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	DeliveredAt *time.Time `json:"delivered_at,omitempty"`
	// Timeout and limits of the postback when it was rendered.
	Timeout       time.Duration `json:"-"`
	MaxConcurrent int           `json:"-"`
	MaxPerSecond  float64       `json:"-"`
	// Kind is the postback's (PostbackKindWebhook: signed when sent with
	// Secrets, its postback's secrets in force, given by ClaimDeliveries).
	Kind    string   `json:"kind"`
	Secrets []string `json:"-"`
	// Claim numbers the claim that handed the delivery to a sender
	// (ClaimDeliveries): only that claim records its attempt, so a sender
	// that outlived its lease cannot undo a later one's. Stopped is set
	// when its postback was disabled or deleted: it is not sent.
	Claim   int    `json:"-"`
	Stopped string `json:"-"`
}

// DeliveryResult is the outcome of one attempt.
type DeliveryResult struct {
	Code  int    // HTTP status; 0 when no answer came
	Error string // transport error or "" for an answer
	Body  string // the start of the answer's body
}

// PostbackService stores postback templates.
type PostbackService interface {
	// CreatePostback validates and stores p, setting its ID.
	CreatePostback(ctx context.Context, p *Postback) error
	// UpdatePostback replaces p (by ID and AppID); ENOTFOUND when missing.
	UpdatePostback(ctx context.Context, p *Postback) error
	// DeletePostback removes postback id of app; its deliveries stay.
	DeletePostback(ctx context.Context, appID, id int64) error
	// Postbacks lists an app's postbacks, oldest first.
	Postbacks(ctx context.Context, appID int64) ([]*Postback, error)
	// RotateWebhookSecret makes a new current secret for webhook id of
	// app and returns it; the old one keeps signing for
	// WebhookRotationOverlap. EINVALID for a postback that is no webhook.
	RotateWebhookSecret(ctx context.Context, appID, id int64) (string, error)
	// Deliveries lists the deliveries q selects, newest first.
	Deliveries(ctx context.Context, q DeliveryQuery) ([]*Delivery, error)
	// ExpireDeliveries deletes up to limit delivered and dead deliveries
	// created before before, oldest first, and returns how many it
	// deleted: fewer than limit when no more are due. Pending deliveries
	// are never deleted, however old.
	ExpireDeliveries(ctx context.Context, before time.Time, limit int) (int, error)
}

// DeliveryQuery selects deliveries of one app for the delivery log.
type DeliveryQuery struct {
	AppID int64
	// Network, when set, selects the deliveries to that network (a
	// postback's Network, "webhook" for a webhook by default).
	Network string
	// Status, when set, selects the deliveries of that status.
	Status DeliveryStatus
	// Before, when not 0, continues after the page whose last id it was.
	Before int64
	// Limit is the page size: 1 to MaxDeliveryPage, 0 for
	// DefaultDeliveryPage.
	Limit int
}

// Sizes of a page of deliveries.
const (
	DefaultDeliveryPage = 100
	MaxDeliveryPage     = 1000
)

// DefaultDeliveryRetention is how long delivered and dead deliveries stay
// in the log by default.
const DefaultDeliveryRetention = 30 * 24 * time.Hour

// Outbox hands deliveries to senders.
type Outbox interface {
	// ClaimDeliveries takes up to n pending deliveries that are due, moving
	// their next attempt lease ahead so that no other sender takes them
	// meanwhile: a sender that dies holding them leaves them to be
	// retried after the lease.
	ClaimDeliveries(ctx context.Context, n int, lease time.Duration) ([]*Delivery, error)
	// RecordAttempt stores the result of claim's attempt at delivery id:
	// delivered, dead, or pending until next. It is ignored when the
	// delivery is no longer pending, or was claimed again since (unless
	// delivered: a 2xx always stands).
	RecordAttempt(ctx context.Context, id int64, claim int, status DeliveryStatus, next time.Time, r DeliveryResult) error
	// ReleaseDelivery makes delivery id due again at once without counting
	// an attempt, when claim still holds it: a sender that cannot start it
	// (stopping, or its network busy) gives it back.
	ReleaseDelivery(ctx context.Context, id int64, claim int) error
}
