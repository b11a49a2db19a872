package postbacks

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"tapline"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func install() *Trigger {
	e := &tapline.Event{ID: "ev-1", AppID: 7, Name: "install", Kind: tapline.KindInstall, Time: t0, InstallID: "inst-1",
		IP: "203.0.113.9", Device: tapline.Device{Platform: tapline.PlatformAndroid, GAID: "38400000-8cf0-11bd-b23e-10b96e40000d"}}
	a := tapline.Attribution{HitID: "hit-9", LinkID: 3, Method: tapline.MethodReferrer, HitTime: t0.Add(-time.Hour),
		HitParams: map[string]string{"utm_source": "Meta", "clickid": "abc def&x=1"}}
	c := &tapline.Conversion{ID: tapline.ConversionID(e.ID), AppID: 7, EventID: e.ID, InstallID: "inst-1", InstallTime: t0,
		Platform: tapline.PlatformAndroid, Attribution: a}
	return &Trigger{Event: e, Conversion: c, Attribution: a, LinkSlug: "spring", Change: "events/0/41"}
}

func purchase(tr *Trigger) *Trigger {
	e := &tapline.Event{ID: "ev-2", AppID: 7, Name: "purchase", Kind: tapline.KindPurchase, Time: t0.Add(time.Hour),
		InstallID: "inst-1", IP: "203.0.113.9", Device: tr.Event.Device, Revenue: &tapline.Revenue{Micros: 4990000, Currency: "EUR"}}
	return &Trigger{Event: e, Conversion: tr.Conversion, Attribution: tr.Attribution, LinkSlug: tr.LinkSlug}
}

func valid(t *testing.T, p *tapline.Postback) *tapline.Postback {
	t.Helper()
	if err := p.Validate(); err != nil {
		t.Fatalf("validate %+v: %v", p, err)
	}
	return p
}

func TestRenderInstallURL(t *testing.T) {
	p := valid(t, &tapline.Postback{ID: 11, AppID: 7, Network: "meta", Events: []string{"install"},
		URL: "https://nw.example/pb/{link_slug}?click={click_id}&cid={clickid}&gaid={gaid}&ip={ip}&ev={event_name}&m={match_method}&k={idempotency_key}&r={reattributed}"})
	ds := Render([]*tapline.Postback{p}, install(), t0)
	if len(ds) != 1 {
		t.Fatalf("deliveries = %d, want 1", len(ds))
	}
	d := ds[0]
	u, err := url.Parse(d.URL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	want := map[string]string{"click": "hit-9", "cid": "abc def&x=1", "gaid": "", "ip": "", "ev": "install", "m": "referrer", "k": d.Key, "r": "0"}
	for k, v := range want {
		if q.Get(k) != v {
			t.Errorf("query %s = %q, want %q (url %s)", k, q.Get(k), v, d.URL)
		}
	}
	if u.Path != "/pb/spring" {
		t.Errorf("path = %q, want /pb/spring", u.Path)
	}
	if d.Method != "GET" || d.Body != nil || d.Status != tapline.DeliveryPending || d.Trigger != "install" || d.ConversionID != "cv-ev-1" {
		t.Errorf("delivery = %+v", d)
	}
	if len(d.Key) != 32 {
		t.Errorf("key %q, want 32 hex digits", d.Key)
	}
}

func TestRenderPersonalFields(t *testing.T) {
	p := valid(t, &tapline.Postback{ID: 1, Network: "n", Events: []string{"install"}, Fields: []string{"gaid", "ip"},
		URL: "https://nw.example/?gaid={gaid}&idfa={idfa}&ip={ip}"})
	tr := install()
	tr.Event.Device.IDFA = "1e2d3c4b-5a69-4788-9766-554433221100" // allowed below
	tr.Event.Device.GAID = strings.ToUpper(tr.Event.Device.GAID)
	q := func() url.Values {
		u, _ := url.Parse(Render([]*tapline.Postback{p}, tr, t0)[0].URL)
		return u.Query()
	}
	got := q()
	if got.Get("gaid") != "38400000-8cf0-11bd-b23e-10b96e40000d" || got.Get("ip") != "203.0.113.9" || got.Get("idfa") != "" {
		t.Errorf("allowed fields: %v, want the GAID in lower case, the address, no IDFA", got)
	}
	p.Fields = append(p.Fields, "idfa")
	if got := q(); got.Get("idfa") != "1E2D3C4B-5A69-4788-9766-554433221100" {
		t.Errorf("idfa = %q, want it in upper case", got.Get("idfa"))
	}
	tr.Event.Device.LimitAdTracking = true
	got = q()
	if got.Get("gaid") != "" || got.Get("ip") != "" {
		t.Errorf("limit ad tracking: %v, want no advertising id nor address", got)
	}
}

func TestRenderBodies(t *testing.T) {
	tr := purchase(install())
	tr.Attribution.HitParams = map[string]string{"clickid": `quo"te\` + "\n"}
	js := valid(t, &tapline.Postback{ID: 2, Network: "n", Events: []string{"purchase"}, Method: "post", URL: "https://nw.example/e",
		Body: `{"click":"{click_id}","cid":"{clickid}","revenue":"{revenue}","currency":"{currency}","name":"{event_name}"}`})
	d := Render([]*tapline.Postback{js}, tr, t0)[0]
	var got map[string]string
	if err := json.Unmarshal(d.Body, &got); err != nil {
		t.Fatalf("body %s: %v", d.Body, err)
	}
	want := map[string]string{"click": "hit-9", "cid": `quo"te\` + "\n", "revenue": "4.99", "currency": "EUR", "name": "purchase"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if d.ContentType != "application/json" || d.Method != "POST" {
		t.Errorf("content type %q, method %q", d.ContentType, d.Method)
	}
	form := valid(t, &tapline.Postback{ID: 3, Network: "n", Events: []string{"kind:purchase"}, Method: "POST", URL: "https://nw.example/e",
		ContentType: "application/x-www-form-urlencoded", Body: "cid={clickid}&rev={revenue}"})
	d = Render([]*tapline.Postback{form}, tr, t0)[0]
	v, err := url.ParseQuery(string(d.Body))
	if err != nil || v.Get("cid") != tr.Attribution.HitParams["clickid"] || v.Get("rev") != "4.99" {
		t.Errorf("form body %q: %v %v", d.Body, v, err)
	}
}

func TestApplies(t *testing.T) {
	base := func() *tapline.Postback {
		return valid(t, &tapline.Postback{ID: 4, Network: "meta", Events: []string{"install", "purchase"}, URL: "https://nw.example/"})
	}
	organic := install()
	organic.Attribution = tapline.Attribution{Method: tapline.MethodOrganic}
	reattr := install()
	reattr.Reattributed = true
	open := purchase(install())
	open.Event.Name, open.Event.Kind = "open", tapline.KindOpen
	for _, tc := range []struct {
		name string
		p    func(*tapline.Postback)
		t    *Trigger
		want bool
	}{
		{"install", nil, install(), true},
		{"named event", nil, purchase(install()), true},
		{"untriggered event", nil, open, false},
		{"organic", nil, organic, false},
		{"unknown installation", nil, &Trigger{Event: open.Event, Attribution: open.Attribution}, false},
		{"disabled", func(p *tapline.Postback) { p.Disabled = true }, install(), false},
		{"source matches, any case", func(p *tapline.Postback) { p.Source = "meta" }, install(), true},
		{"other source", func(p *tapline.Postback) { p.Source = "google" }, install(), false},
		{"its link", func(p *tapline.Postback) { p.LinkIDs = []int64{2, 3} }, install(), true},
		{"another link", func(p *tapline.Postback) { p.LinkIDs = []int64{2} }, install(), false},
		{"re-attribution, none", nil, reattr, false},
		{"re-attribution, send", func(p *tapline.Postback) { p.OnReattribution = tapline.ReattributionSend }, reattr, true},
		{"kind trigger", func(p *tapline.Postback) { p.Events = []string{"kind:open"} }, open, true},
		{"second install event", nil, &Trigger{Event: install().Event, Conversion: install().Conversion, Attribution: install().Attribution}, false},
		{"second install event, kind:install", func(p *tapline.Postback) { p.Events = []string{"kind:install"} },
			&Trigger{Event: install().Event, Conversion: install().Conversion, Attribution: install().Attribution}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := base()
			if tc.p != nil {
				tc.p(p)
			}
			if got := Applies(p, tc.t); got != tc.want {
				t.Errorf("Applies = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestKey(t *testing.T) {
	p := &tapline.Postback{ID: 5}
	q := &tapline.Postback{ID: 6}
	a, b := install(), install()
	if Key(p, a) != Key(p, b) {
		t.Error("the same cause has two keys: a replay would deliver twice")
	}
	late := install()
	late.Change = "hits/2/9"
	keys := map[string]string{
		"install":           Key(p, a),
		"other postback":    Key(q, a),
		"re-attribution":    Key(p, late),
		"event":             Key(p, purchase(a)),
		"event, other post": Key(q, purchase(a)),
	}
	seen := map[string]string{}
	for name, k := range keys {
		if other, ok := seen[k]; ok {
			t.Errorf("%s and %s share key %s", name, other, k)
		}
		seen[k] = name
	}
}

func TestValidate(t *testing.T) {
	ok := func() tapline.Postback {
		return tapline.Postback{Network: "n", Events: []string{"install"}, URL: "https://nw.example/?c={click_id}"}
	}
	for _, tc := range []struct {
		name string
		edit func(*tapline.Postback)
		want string
	}{
		{"no network", func(p *tapline.Postback) { p.Network = " " }, "network"},
		{"relative url", func(p *tapline.Postback) { p.URL = "/pb?c={click_id}" }, "url"},
		{"ftp url", func(p *tapline.Postback) { p.URL = "ftp://nw.example/" }, "url"},
		{"macro host", func(p *tapline.Postback) { p.URL = "https://{clickid}.example/" }, "url"},
		{"space in url", func(p *tapline.Postback) { p.URL = "https://nw.example/?c={click id}" }, "url"},
		{"GET with body", func(p *tapline.Postback) { p.Body = "x" }, "body"},
		{"method", func(p *tapline.Postback) { p.Method = "PUT" }, "method"},
		{"no events", func(p *tapline.Postback) { p.Events = nil }, "events"},
		{"unknown kind", func(p *tapline.Postback) { p.Events = []string{"kind:refund"} }, "events"},
		{"field", func(p *tapline.Postback) { p.Fields = []string{"email"} }, "fields"},
		{"reattribution", func(p *tapline.Postback) { p.OnReattribution = "maybe" }, "on_reattribution"},
		{"timeout", func(p *tapline.Postback) { p.Timeout = time.Hour }, "timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := ok()
			tc.edit(&p)
			err := p.Validate()
			if tapline.ErrorCode(err) != tapline.EINVALID || !strings.HasPrefix(tapline.ErrorMessage(err), tc.want) {
				t.Errorf("Validate = %v, want EINVALID about %s", err, tc.want)
			}
		})
	}
	p := ok()
	if err := p.Validate(); err != nil || p.Method != "GET" || p.OnReattribution != tapline.ReattributionNone {
		t.Errorf("valid postback: %v, %+v", err, p)
	}
}

func TestExpandMacros(t *testing.T) {
	vals := map[string]string{"a": "1", "b.c": "2"}
	for tmpl, want := range map[string]string{
		"{a}-{b.c}":   "1-2",
		`{"k":"{a}"}`: `{"k":"1"}`,
		"{a":          "{a",
		"{}{a}}":      "{}1}",
		"{{a}}":       "{1}",
		"{unknown}":   "",
		"no macros":   "no macros",
		"{a b}":       "{a b}",
		"x?{a}":       "x?1",
	} {
		got := tapline.ExpandMacros(tmpl, func(name, _ string) string { return vals[name] })
		if got != want {
			t.Errorf("ExpandMacros(%q) = %q, want %q", tmpl, got, want)
		}
	}
	var prefixes []string
	tapline.ExpandMacros("p/{a}?q={b.c}", func(_, prefix string) string { prefixes = append(prefixes, prefix); return "" })
	if strings.Join(prefixes, "|") != "p/|p/{a}?q=" {
		t.Errorf("prefixes = %q", prefixes)
	}
}

func TestFormatMicros(t *testing.T) {
	for m, want := range map[int64]string{4990000: "4.99", 3000000: "3", 1: "0.000001", -1500000: "-1.5", 0: "0", 123456789: "123.456789"} {
		if got := formatMicros(m); got != want {
			t.Errorf("formatMicros(%d) = %q, want %q", m, got, want)
		}
	}
}

func TestWebhookRender(t *testing.T) {
	w := valid(t, &tapline.Postback{ID: 9, AppID: 7, Kind: tapline.PostbackKindWebhook, Events: []string{"install", "purchase"},
		URL: "https://customer.example/hooks/tapline"})
	if w.Method != "POST" || w.ContentType != "application/json" || w.OnReattribution != tapline.ReattributionSend || w.Network != "webhook" {
		t.Fatalf("webhook defaults: %+v", w)
	}
	body := func(tr *Trigger) WebhookPayload {
		t.Helper()
		ds := Render([]*tapline.Postback{w}, tr, t0)
		if len(ds) != 1 {
			t.Fatalf("deliveries = %d, want 1", len(ds))
		}
		if ds[0].URL != w.URL || ds[0].Kind != tapline.PostbackKindWebhook || ds[0].Method != "POST" {
			t.Errorf("delivery %+v", ds[0])
		}
		var pl WebhookPayload
		if err := json.Unmarshal(ds[0].Body, &pl); err != nil {
			t.Fatalf("body %s: %v", ds[0].Body, err)
		}
		if strings.Contains(string(ds[0].Body), "38400000") || strings.Contains(string(ds[0].Body), "203.0.113.9") {
			t.Errorf("body %s carries the advertising id or the address", ds[0].Body)
		}
		return pl
	}
	in := install()
	in.Conversion.History = []tapline.AttributionChange{{By: in.Change, To: in.Attribution, At: t0}}
	pl := body(in)
	c := pl.Data.Conversion
	if pl.Type != WebhookConversionCreated || c == nil || c.HitID != "hit-9" || c.LinkSlug != "spring" || c.Method != "referrer" ||
		c.HitParams["clickid"] != "abc def&x=1" || pl.Data.Event != nil || !pl.Timestamp.Equal(t0) || pl.Data.AppID != 7 {
		t.Errorf("install payload %+v, conversion %+v", pl, c)
	}
	// Organic installs and re-attributions reach a webhook.
	org := install()
	org.Attribution = tapline.Attribution{Method: tapline.MethodOrganic}
	if pl := body(org); pl.Data.Conversion.Method != "organic" || pl.Data.Conversion.HitID != "" || pl.Data.Conversion.HitTime != nil {
		t.Errorf("organic payload %+v", pl.Data.Conversion)
	}
	late := install()
	late.Change, late.Reattributed = "hits/0/7", true
	late.Conversion.History = []tapline.AttributionChange{{By: "events/0/41", At: t0}, {By: "hits/0/7", At: t0.Add(time.Hour)}}
	if pl := body(late); pl.Type != WebhookConversionUpdated || !pl.Data.Conversion.Reattributed || !pl.Timestamp.Equal(t0.Add(time.Hour)) {
		t.Errorf("re-attribution payload %+v", pl)
	}
	pl = body(purchase(in))
	if pl.Type != WebhookEvent || pl.Data.Event == nil || pl.Data.Event.Revenue == nil || pl.Data.Event.Revenue.Amount != "4.99" ||
		pl.Data.Event.Name != "purchase" || pl.Data.Conversion == nil {
		t.Errorf("event payload %+v", pl)
	}
	// An event of an installation tapline has no install of.
	orphan := purchase(in)
	orphan.Conversion = nil
	if pl := body(orphan); pl.Data.Conversion != nil || pl.Data.Event == nil {
		t.Errorf("orphan event payload %+v", pl)
	}
	bad := tapline.Postback{Kind: tapline.PostbackKindWebhook, Events: []string{"install"}, URL: "https://c.example/", Body: "{x}"}
	if err := bad.Validate(); tapline.ErrorCode(err) != tapline.EINVALID {
		t.Errorf("a webhook with a body: %v, want EINVALID", err)
	}
}

func TestSample(t *testing.T) {
	p := valid(t, &tapline.Postback{ID: 3, AppID: 7, Network: "n", Events: []string{"purchase"}, Method: "POST",
		URL: "https://nw.example/pb?c={click_id}&sub={sub_id}&k={idempotency_key}", Body: `{"rev":"{revenue}","ev":"{event_name}"}`})
	d := Sample(p, "spring", t0)
	u, _ := url.Parse(d.URL)
	q := u.Query()
	if q.Get("c") != "test-hit" || q.Get("sub") != "test" || q.Get("k") != d.Key || !strings.HasPrefix(d.Key, "test-") {
		t.Errorf("sample URL %s, key %s", d.URL, d.Key)
	}
	var body map[string]string
	if err := json.Unmarshal(d.Body, &body); err != nil || body["rev"] != "0.99" || body["ev"] != "purchase" {
		t.Errorf("sample body %s (%v)", d.Body, err)
	}
	if other := Sample(p, "spring", t0); other.Key == d.Key {
		t.Error("two samples share a key")
	}
	w := valid(t, &tapline.Postback{AppID: 7, Kind: tapline.PostbackKindWebhook, Events: []string{"install"}, URL: "https://c.example/h",
		Secrets: []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}})
	d = Sample(w, "", t0)
	var pl WebhookPayload
	if err := json.Unmarshal(d.Body, &pl); err != nil || pl.Type != WebhookConversionCreated || len(d.Secrets) != 1 {
		t.Errorf("sample webhook %s, %+v (%v)", d.Body, d, err)
	}
}

func TestReengagementTrigger(t *testing.T) {
	in := install()
	open := purchase(in)
	open.Event.Name, open.Event.Kind, open.Event.Revenue = "open", tapline.KindOpen, nil
	re := *open
	re.Reengagement = true
	re.Attribution = tapline.Attribution{HitID: "hit-back", LinkID: 8, Method: tapline.MethodAdID, HitTime: t0.Add(time.Hour)}
	p := valid(t, &tapline.Postback{ID: 1, Network: "n", Events: []string{"reengagement"}, URL: "https://nw.example/?c={click_id}&e={event_name}"})
	if !Applies(p, &re) || Applies(p, open) {
		t.Errorf("a reengagement postback: applies to the re-engagement %v, to the open %v; want true, false", Applies(p, &re), Applies(p, open))
	}
	d := Render([]*tapline.Postback{p}, &re, t0)[0]
	if !strings.Contains(d.URL, "c=hit-back&e=reengagement") || d.Trigger != "reengagement" {
		t.Errorf("re-engagement delivery %+v", d)
	}
	both := valid(t, &tapline.Postback{ID: 2, Network: "n", Events: []string{"reengagement", "open"}, URL: "https://nw.example/"})
	if Key(both, &re) == Key(both, open) {
		t.Error("the open and its re-engagement share a key")
	}
	w := valid(t, &tapline.Postback{ID: 3, Kind: tapline.PostbackKindWebhook, Events: []string{"reengagement"}, URL: "https://c.example/"})
	var pl WebhookPayload
	if err := json.Unmarshal(Render([]*tapline.Postback{w}, &re, t0)[0].Body, &pl); err != nil {
		t.Fatal(err)
	}
	if pl.Type != WebhookReengagement || pl.Data.Reengagement == nil || pl.Data.Reengagement.HitID != "hit-back" || pl.Data.Conversion.HitID != "hit-9" {
		t.Errorf("re-engagement webhook %+v (tap %+v, conversion %+v)", pl, pl.Data.Reengagement, pl.Data.Conversion)
	}
}
