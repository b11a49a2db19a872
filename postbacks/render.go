// Package postbacks turns attributed installs and events into deliveries
// of an app's postback templates (Render), and sends the outbox's
// deliveries to the ad networks (Sender): at least once, each with its
// idempotency key, retried with exponential backoff and jitter for
// tapline.PostbackDeliveryMaxAge, within each network's limits.
package postbacks

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"tapline"
)

// Trigger is an install or event the matcher counted under an attribution.
type Trigger struct {
	// Event is the install or event; for a re-attribution, the install.
	Event *tapline.Event
	// Conversion is the installation's conversion (nil: an event of an
	// installation tapline does not know, which no postback follows).
	Conversion *tapline.Conversion
	// Attribution is the one the event counts under: for an install, its
	// conversion's new one.
	Attribution tapline.Attribution
	// LinkSlug is the slug of Attribution's link.
	LinkSlug string
	// Change is the bus position of the conversion change an install
	// trigger announces (the install's own match, or a late tap's
	// re-attribution); "" for other events.
	Change string
	// Reattributed marks the install trigger of a late tap that took the
	// install from another tap.
	Reattributed bool
	// Reengagement marks the re-engagement of an installed app that open
	// Event is, credited to the tap of Attribution (a re-engagement link's).
	Reengagement bool
}

// install reports whether t announces an install's attribution.
func (t *Trigger) install() bool { return t.Change != "" }

// name is t's trigger name: "install", "reengagement" or the event's name.
func (t *Trigger) name() string {
	switch {
	case t.install():
		return tapline.PostbackInstall
	case t.Reengagement:
		return tapline.PostbackReengagement
	}
	return t.Event.Name
}

// Applies reports whether p follows trigger t: enabled, triggered by its
// install or event, for a tap on its links from its source.
func Applies(p *tapline.Postback, t *Trigger) bool {
	if p.Disabled {
		return false
	}
	if p.IsWebhook() {
		return appliesWebhook(p, t)
	}
	a := &t.Attribution
	if a.HitID == "" || a.Method == tapline.MethodOrganic || t.Conversion == nil {
		return false
	}
	if t.Reattributed && p.OnReattribution != tapline.ReattributionSend {
		return false
	}
	if len(p.LinkIDs) > 0 && !slices.Contains(p.LinkIDs, a.LinkID) {
		return false
	}
	if p.Source != "" && !strings.EqualFold(p.Source, a.HitParams["utm_source"]) {
		return false
	}
	if t.install() {
		return slices.Contains(p.Events, tapline.PostbackInstall)
	}
	if t.Reengagement {
		return slices.Contains(p.Events, tapline.PostbackReengagement)
	}
	if p.OnReattribution != tapline.ReattributionSend && takenFromTap(t.Conversion, a.HitID) {
		// The network was never told of the install: it hears of none
		// of its events either.
		return false
	}
	if t.Event.Kind == tapline.KindInstall || t.Event.Name == tapline.PostbackInstall {
		// Another install event of an installation announced already:
		// only a postback on every install event wants it.
		return slices.Contains(p.Events, "kind:"+string(tapline.KindInstall))
	}
	return slices.Contains(p.Events, t.Event.Name) || slices.Contains(p.Events, "kind:"+string(t.Event.Kind))
}

// takenFromTap reports whether c's attribution to tap hit came from a late
// tap taking the install from another tap: the change that last credited
// it replaced a tap's attribution.
func takenFromTap(c *tapline.Conversion, hit string) bool {
	for i := len(c.History) - 1; i >= 0; i-- {
		if ch := c.History[i]; ch.To.HitID == hit {
			return ch.From != nil && ch.From.Method != tapline.MethodOrganic && ch.From.HitID != ""
		}
	}
	return false
}

// Render returns the deliveries of the postbacks that follow t, created at
// now.
func Render(ps []*tapline.Postback, t *Trigger, now time.Time) []*tapline.Delivery {
	var ds []*tapline.Delivery
	for _, p := range ps {
		if !Applies(p, t) {
			continue
		}
		ds = append(ds, render(p, t, now))
	}
	return ds
}

// Key returns the idempotency key of p's delivery for t: the same for a
// replay of the record that caused it, another for every other cause.
func Key(p *tapline.Postback, t *Trigger) string {
	cause := "event\x00" + t.Event.ID
	if t.Reengagement {
		cause = "reengagement\x00" + t.Event.ID
	}
	if t.install() {
		cause = "install\x00" + t.Conversion.ID + "\x00" + t.Change
	}
	sum := sha256.Sum256([]byte(strconv.FormatInt(p.ID, 10) + "\x00" + cause))
	return hex.EncodeToString(sum[:16])
}

func render(p *tapline.Postback, t *Trigger, now time.Time) *tapline.Delivery {
	key := Key(p, t)
	d := &tapline.Delivery{
		Key: key, AppID: p.AppID, PostbackID: p.ID, Network: p.Network, Trigger: t.name(), EventID: t.Event.ID,
		Method: p.Method, ContentType: p.ContentType, Status: tapline.DeliveryPending, NextAttempt: now, CreatedAt: now,
		Timeout: p.Timeout, MaxConcurrent: p.MaxConcurrent, MaxPerSecond: p.MaxPerSecond, Kind: p.Kind,
	}
	if t.Conversion != nil {
		d.ConversionID = t.Conversion.ID
	}
	if p.IsWebhook() {
		d.URL, d.Body = p.URL, webhookBody(t)
		return d
	}
	vals := values(p, t, key)
	d.URL = expand(p.URL, vals, urlEscape)
	if p.Body != "" {
		esc := func(s string, _ bool) string { return s }
		switch ct := strings.ToLower(p.ContentType); {
		case strings.Contains(ct, "json"):
			esc = func(s string, _ bool) string {
				b, _ := json.Marshal(s) // a string always marshals
				return string(b[1 : len(b)-1])
			}
		case strings.Contains(ct, "x-www-form-urlencoded"):
			esc = func(s string, _ bool) string { return url.QueryEscape(s) }
		}
		d.Body = []byte(expand(p.Body, vals, esc))
	}
	return d
}

// urlEscape escapes a macro's value for its place in a URL: the path
// before the first ?, the query after it.
func urlEscape(s string, query bool) string {
	if query {
		return url.QueryEscape(s)
	}
	return url.PathEscape(s)
}

// expand fills in tmpl's macros with vals, escaped by esc, which is told
// whether the macro stands after a ?.
func expand(tmpl string, vals func(string) string, esc func(s string, query bool) string) string {
	return tapline.ExpandMacros(tmpl, func(name, prefix string) string {
		return esc(vals(name), strings.IndexByte(prefix, '?') >= 0)
	})
}

// values returns the macro values of p's delivery for t.
func values(p *tapline.Postback, t *Trigger, key string) func(string) string {
	e, c, a := t.Event, t.Conversion, &t.Attribution
	personal := func(field, v string) string {
		if e.Device.LimitAdTracking || !p.Allows(field) {
			return ""
		}
		return v
	}
	return func(name string) string {
		switch name {
		case "click_id":
			return a.HitID
		case "install_id":
			return c.InstallID
		case "conversion_id":
			return c.ID
		case "event_id":
			return e.ID
		case "event_name":
			return t.name()
		case "event_kind":
			return string(e.Kind)
		case "event_time":
			return e.Time.UTC().Format(time.RFC3339)
		case "install_time":
			return c.InstallTime.UTC().Format(time.RFC3339)
		case "revenue":
			if e.Revenue == nil || t.install() {
				return ""
			}
			return formatMicros(e.Revenue.Micros)
		case "currency":
			if e.Revenue == nil || t.install() {
				return ""
			}
			return e.Revenue.Currency
		case "link_id":
			return strconv.FormatInt(a.LinkID, 10)
		case "link_slug":
			return t.LinkSlug
		case "match_method":
			return string(a.Method)
		case "platform":
			return string(c.Platform)
		case "idfa": // in Apple's form, upper case
			return personal(tapline.PostbackPersonalFieldIDFA, strings.ToUpper(e.Device.IDFA))
		case "gaid": // in Google's, lower case
			return personal(tapline.PostbackPersonalFieldGAID, strings.ToLower(e.Device.GAID))
		case "ip":
			return personal(tapline.PostbackPersonalFieldAddress, e.IP)
		case "idempotency_key":
			return key
		case "reattributed":
			if t.Reattributed {
				return "1"
			}
			return "0"
		}
		return a.HitParams[name]
	}
}

// formatMicros writes an amount in millionths as a decimal: 4990000 is
// "4.99", -1500000 "-1.5", 3000000 "3".
func formatMicros(m int64) string {
	neg := m < 0
	if neg {
		m = -m
	}
	s := strconv.FormatInt(m/1e6, 10)
	if frac := m % 1e6; frac != 0 {
		s += "." + strings.TrimRight(strconv.FormatInt(1e6+frac, 10)[1:], "0")
	}
	if neg {
		s = "-" + s
	}
	return s
}
