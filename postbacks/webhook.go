package postbacks

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"tapline"
)

// Webhook payload types.
const (
	WebhookConversionCreated = "conversion.created"
	WebhookConversionUpdated = "conversion.updated"
	WebhookEvent             = "event.created"
	WebhookReengagement      = "reengagement.created"
)

// WebhookPayload is the JSON body of a customer webhook's call.
type WebhookPayload struct {
	Type string `json:"type"` // WebhookConversionCreated, WebhookConversionUpdated or WebhookEvent
	// Timestamp is when the change or event happened.
	Timestamp time.Time   `json:"timestamp"`
	Data      WebhookData `json:"data"`
}

// WebhookData is what a webhook call tells: the installation's conversion
// (nil for an event of an installation tapline has no install of) and, for
// an event, the event. Advertising ids and addresses are never sent.
type WebhookData struct {
	AppID      int64              `json:"app_id"`
	Conversion *WebhookConversion `json:"conversion"`
	Event      *WebhookEventData  `json:"event,omitempty"`
	// Reengagement is the tap a re-engagement (of type
	// WebhookReengagement) is credited to; Conversion is then the
	// installation's own.
	Reengagement *WebhookTap `json:"reengagement,omitempty"`
}

// WebhookTap is a tap a webhook tells of.
type WebhookTap struct {
	Method    string            `json:"method"`
	LinkID    int64             `json:"link_id"`
	LinkSlug  string            `json:"link_slug,omitempty"`
	HitID     string            `json:"hit_id"`
	HitTime   time.Time         `json:"hit_time"`
	HitParams map[string]string `json:"hit_params,omitempty"`
}

// WebhookConversion is a conversion as a webhook tells it.
type WebhookConversion struct {
	ID          string            `json:"id"`
	InstallID   string            `json:"install_id"`
	InstallTime time.Time         `json:"install_time"`
	Platform    tapline.Platform  `json:"platform"`
	Method      string            `json:"method"`
	LinkID      int64             `json:"link_id,omitempty"`
	LinkSlug    string            `json:"link_slug,omitempty"`
	HitID       string            `json:"hit_id,omitempty"`
	HitTime     *time.Time        `json:"hit_time,omitempty"`
	HitParams   map[string]string `json:"hit_params,omitempty"`
	// Reattributed is set on an update that took the install from
	// another tap.
	Reattributed bool `json:"reattributed,omitempty"`
	Reinstall    bool `json:"reinstall,omitempty"`
}

// WebhookEventData is an event as a webhook tells it.
type WebhookEventData struct {
	ID       string            `json:"id"`
	Name     string            `json:"name"`
	Kind     tapline.EventKind `json:"kind,omitempty"`
	Time     time.Time         `json:"time"`
	Revenue  *WebhookRevenue   `json:"revenue,omitempty"`
	Params   map[string]string `json:"params,omitempty"`
	Platform tapline.Platform  `json:"platform,omitempty"`
}

// WebhookRevenue is an amount as a decimal string and its currency.
type WebhookRevenue struct {
	Amount   string `json:"amount"`
	Currency string `json:"currency"`
}

// appliesWebhook reports whether webhook p follows t: every install,
// organic ones and re-attributions included, and the events it names.
func appliesWebhook(p *tapline.Postback, t *Trigger) bool {
	a := &t.Attribution
	if len(p.LinkIDs) > 0 && !slices.Contains(p.LinkIDs, a.LinkID) {
		return false
	}
	if p.Source != "" && !strings.EqualFold(p.Source, a.HitParams["utm_source"]) {
		return false
	}
	if t.install() {
		return t.Conversion != nil && slices.Contains(p.Events, tapline.PostbackInstall)
	}
	if t.Reengagement {
		return slices.Contains(p.Events, tapline.PostbackReengagement)
	}
	if t.Event.Kind == tapline.KindInstall || t.Event.Name == tapline.PostbackInstall {
		return slices.Contains(p.Events, "kind:"+string(tapline.KindInstall))
	}
	return slices.Contains(p.Events, "*") || slices.Contains(p.Events, t.Event.Name) || slices.Contains(p.Events, "kind:"+string(t.Event.Kind))
}

// webhookBody returns the JSON of t for a webhook.
func webhookBody(t *Trigger) []byte {
	pl := WebhookPayload{Data: WebhookData{AppID: t.Event.AppID}}
	if c := t.Conversion; c != nil {
		a := &c.Attribution // the installation's, also for a re-engagement
		if !t.Reengagement {
			a = &t.Attribution
		}
		wc := &WebhookConversion{ID: c.ID, InstallID: c.InstallID, InstallTime: c.InstallTime.UTC(), Platform: c.Platform,
			Method: string(a.Method), LinkID: a.LinkID, HitID: a.HitID, HitParams: a.HitParams, Reattributed: t.Reattributed,
			Reinstall: c.Reinstall != nil}
		if a.HitID != "" && !t.Reengagement {
			wc.LinkSlug = t.LinkSlug
			ht := a.HitTime.UTC()
			wc.HitTime = &ht
		}
		pl.Data.AppID = c.AppID
		pl.Data.Conversion = wc
	}
	switch {
	case t.install() && len(t.Conversion.History) > 0 && t.Change != t.Conversion.History[0].By:
		pl.Type, pl.Timestamp = WebhookConversionUpdated, changeTime(t)
	case t.install():
		pl.Type, pl.Timestamp = WebhookConversionCreated, t.Conversion.InstallTime.UTC()
	default:
		e := t.Event
		pl.Type, pl.Timestamp = WebhookEvent, e.Time.UTC()
		if t.Reengagement {
			a := &t.Attribution
			pl.Type = WebhookReengagement
			pl.Data.Reengagement = &WebhookTap{Method: string(a.Method), LinkID: a.LinkID, LinkSlug: t.LinkSlug, HitID: a.HitID,
				HitTime: a.HitTime.UTC(), HitParams: a.HitParams}
		}
		we := &WebhookEventData{ID: e.ID, Name: e.Name, Kind: e.Kind, Time: e.Time.UTC(), Params: e.Params, Platform: e.Device.Platform}
		if e.Revenue != nil {
			we.Revenue = &WebhookRevenue{Amount: formatMicros(e.Revenue.Micros), Currency: e.Revenue.Currency}
		}
		pl.Data.Event = we
	}
	b, err := json.Marshal(pl)
	if err != nil {
		panic(err) // plain data always marshals
	}
	return b
}

// changeTime is when the change t announces was made.
func changeTime(t *Trigger) time.Time {
	for _, ch := range t.Conversion.History {
		if ch.By == t.Change {
			return ch.At.UTC()
		}
	}
	return t.Conversion.InstallTime.UTC()
}
