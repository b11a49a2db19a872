package postbacks

import (
	"crypto/rand"
	"encoding/hex"
	"slices"
	"strings"
	"time"

	"tapline"
)

// Sample renders p for a made-up install, or event when p is not triggered
// by installs, on a tap of link slug, for a test call: the tap's
// parameters p's templates name are "test", its ids say "test", and its
// key is random so a network never takes it for a real delivery.
func Sample(p *tapline.Postback, slug string, now time.Time) *tapline.Delivery {
	now = now.UTC()
	params := map[string]string{"utm_source": "test"}
	if p.Source != "" {
		params["utm_source"] = p.Source
	}
	for _, tmpl := range []string{p.URL, p.Body} {
		tapline.ExpandMacros(tmpl, func(name, _ string) string {
			if !slices.Contains(tapline.PostbackMacros, name) {
				params[name] = "test"
			}
			return ""
		})
	}
	var link int64
	if len(p.LinkIDs) > 0 {
		link = p.LinkIDs[0]
	}
	e := &tapline.Event{ID: "test-event", AppID: p.AppID, Name: tapline.PostbackInstall, Kind: tapline.KindInstall, Time: now,
		ReceivedAt: now, InstallID: "test-install", IP: "192.0.2.1",
		Device: tapline.Device{Platform: tapline.PlatformIOS, IDFA: "00000000-0000-0000-0000-000000000001"}}
	a := tapline.Attribution{HitID: "test-hit", LinkID: link, Method: tapline.MethodFingerprint, HitTime: now.Add(-time.Hour), HitParams: params}
	c := &tapline.Conversion{ID: tapline.ConversionID(e.ID), AppID: p.AppID, EventID: e.ID, InstallID: e.InstallID, InstallTime: now,
		Platform: tapline.PlatformIOS, Attribution: a}
	t := &Trigger{Event: e, Conversion: c, Attribution: a, LinkSlug: slug, Change: "test"}
	if !slices.Contains(p.Events, tapline.PostbackInstall) {
		t.Change = ""
		e.ID, e.Kind, e.Name = "test-event", tapline.KindCustom, "test"
		// As the first trigger names it.
		if k, ok := strings.CutPrefix(p.Events[0], "kind:"); ok {
			e.Kind, e.Name = tapline.EventKind(k), k
		} else if p.Events[0] != "*" {
			e.Name = p.Events[0]
		}
		if e.Kind == tapline.KindPurchase || e.Name == "purchase" {
			e.Revenue = &tapline.Revenue{Micros: 990000, Currency: "USD"}
		}
	}
	c.History = []tapline.AttributionChange{{By: "test", To: a, At: now}}
	d := render(p, t, now)
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	key := "test-" + hex.EncodeToString(b)
	if !p.IsWebhook() {
		d.URL = strings.ReplaceAll(d.URL, d.Key, key)
		d.Body = []byte(strings.ReplaceAll(string(d.Body), d.Key, key))
	}
	d.Key, d.Secrets = key, p.Secrets
	return d
}
