package collector_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"tapline"
	"tapline/collector"
	"tapline/internal/wire"
	"tapline/pebble"
	"tapline/postgres"
	"tapline/postgres/pgtest"
)

// Demo fixtures: the Tapstream request fixtures carry this secret and
// account name.
const (
	demoSecret = "demo-secret-0123456789"
	demoKey    = "demo-sdk-key-0123456789"
	iosURL     = "https://apps.apple.com/app/id123456789"
	androidURL = "https://play.google.com/store/apps/details?id=com.example.demo"
	webURL     = "https://example.com/demo"

	iphoneUA  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1"
	androidUA = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36"
	desktopUA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)

// env is a collector over a fresh database and bus.
type env struct {
	c        *collector.Collector
	h        http.Handler
	db       *postgres.DB
	bus      *pebble.Bus
	accounts tapline.AccountService
	account  *tapline.Account
	app      *tapline.App
	link     *tapline.Link
}

func newEnv(tb testing.TB, cfg collector.Config) *env {
	tb.Helper()
	ctx := context.Background()
	db := pgtest.Open(tb)
	svc := postgres.NewAccountService(db)
	acct := &tapline.Account{Name: "demo"}
	if err := svc.CreateAccount(ctx, acct, &tapline.User{Email: "demo@example.com"}, "demo-password"); err != nil {
		tb.Fatalf("create account: %v", err)
	}
	app := &tapline.App{AccountID: acct.ID, Name: "Demo", SDKSecret: demoSecret, SDKKey: demoKey,
		IOSURL: iosURL, AndroidURL: androidURL, WebURL: webURL}
	if err := svc.CreateApp(ctx, app); err != nil {
		tb.Fatalf("create app: %v", err)
	}
	link := &tapline.Link{AppID: app.ID, Slug: "demo", Name: "Demo link"}
	if err := svc.CreateLink(ctx, link); err != nil {
		tb.Fatalf("create link: %v", err)
	}
	bus := pebble.NewBus(tb.TempDir())
	if err := bus.Open(); err != nil {
		tb.Fatalf("open bus: %v", err)
	}
	tb.Cleanup(func() { _ = bus.Close() })
	if cfg.TrustedProxies == nil {
		cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	}
	c := collector.New(cfg, svc, bus)
	c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := c.Open(ctx); err != nil {
		tb.Fatalf("open collector: %v", err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return &env{c: c, h: c.Handler(), db: db, bus: bus, accounts: svc, account: acct, app: app, link: link}
}

// do serves one request from peer through the handler.
func (e *env) do(req *http.Request, peer string) *httptest.ResponseRecorder {
	if peer != "" {
		req.RemoteAddr = peer
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return rec
}

// fetch returns the first n messages of topic across partitions, waiting up
// to 10 seconds for them.
func fetch(tb testing.TB, bus tapline.Bus, topic string, n int) []tapline.Message {
	tb.Helper()
	ctx := context.Background()
	parts, err := bus.Partitions(ctx, topic)
	if err != nil {
		tb.Fatalf("partitions: %v", err)
	}
	offsets := make([]int64, parts)
	var got []tapline.Message
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < n && time.Now().Before(deadline) {
		for p := range parts {
			fctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			msgs, err := bus.Fetch(fctx, topic, p, offsets[p], 1000)
			cancel()
			if err != nil && fctx.Err() == nil {
				tb.Fatalf("fetch %s/%d: %v", topic, p, err)
			}
			for _, m := range msgs {
				offsets[p] = m.Offset + 1
				got = append(got, m)
			}
		}
	}
	if len(got) < n {
		tb.Fatalf("fetched %d messages from %s, want %d", len(got), topic, n)
	}
	return got
}

func hits(tb testing.TB, bus tapline.Bus, n int) []*tapline.Hit {
	tb.Helper()
	var out []*tapline.Hit
	for _, m := range fetch(tb, bus, tapline.TopicHits, n) {
		var h tapline.Hit
		if err := json.Unmarshal(m.Value, &h); err != nil {
			tb.Fatalf("decode hit: %v", err)
		}
		if len(m.Key) == 0 {
			tb.Errorf("hit %s published without key", h.ID)
		}
		out = append(out, &h)
	}
	return out
}

func events(tb testing.TB, bus tapline.Bus, n int) []*tapline.Event {
	tb.Helper()
	var out []*tapline.Event
	for _, m := range fetch(tb, bus, tapline.TopicEvents, n) {
		var e tapline.Event
		if err := json.Unmarshal(m.Value, &e); err != nil {
			tb.Fatalf("decode event: %v", err)
		}
		out = append(out, &e)
	}
	return out
}

// metricValue sums the samples of the named metric whose labels include
// labels.
func metricValue(tb testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatalf("gather: %v", err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue metric
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return sum
}

func TestRedirect(t *testing.T) {
	t.Parallel()
	e := newEnv(t, collector.Config{})
	const idfa = "6D92078A-8246-4BA4-AE5B-76104861E7DC"
	tests := []struct {
		name, ua, query, peer, xff string
		wantPrefix                 string
		wantPlatform               tapline.Platform
		wantIP, wantAdID           string
	}{
		{"iphone", iphoneUA, "idfa=" + idfa, "10.1.2.3:4000", "198.51.100.7, 10.0.0.2", iosURL, tapline.PlatformIOS, "198.51.100.7", strings.ToLower(idfa)},
		{"android", androidUA, "utm_source=news&utm_campaign=spring&gaid={gaid}", "203.0.113.5:4000", "198.51.100.99", androidURL, tapline.PlatformAndroid, "203.0.113.5", ""},
		{"desktop", desktopUA, "adid=%25%25ADID%25%25&advertising_id=00000000-0000-0000-0000-000000000000", "[2001:db8::1]:4000", "", webURL, tapline.PlatformWeb, "2001:db8::1", ""},
	}
	locations := map[string]string{}
	for _, tt := range tests {
		req := httptest.NewRequest(http.MethodGet, "/l/demo?case="+tt.name+"&"+tt.query, nil)
		req.Header.Set("User-Agent", tt.ua)
		req.Header.Set("Accept-Language", "en-GB,en;q=0.9")
		req.Header.Set("Referer", "https://news.example/")
		req.Header.Set("Sec-CH-UA-Platform", `"Android"`)
		if tt.name != "android" {
			req.Header.Del("Sec-CH-UA-Platform")
		}
		if tt.xff != "" {
			req.Header.Set("X-Forwarded-For", tt.xff)
		}
		rec := e.do(req, tt.peer)
		if rec.Code != http.StatusFound {
			t.Fatalf("%s: status = %d, want 302", tt.name, rec.Code)
		}
		loc := rec.Header().Get("Location")
		if !strings.HasPrefix(loc, tt.wantPrefix) {
			t.Errorf("%s: Location = %q, want prefix %q", tt.name, loc, tt.wantPrefix)
		}
		if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s: Cache-Control = %q, want no-store", tt.name, cc)
		}
		locations[tt.name] = loc
	}

	byCase := map[string]*tapline.Hit{}
	for _, h := range hits(t, e.bus, len(tests)) {
		byCase[h.Params["case"]] = h
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := byCase[tt.name]
			if h == nil {
				t.Fatalf("no hit recorded")
			}
			if h.AppID != e.app.ID || h.LinkID != e.link.ID {
				t.Errorf("app, link = %d, %d; want %d, %d", h.AppID, h.LinkID, e.app.ID, e.link.ID)
			}
			if h.Platform != tt.wantPlatform || h.IP != tt.wantIP || h.AdID != tt.wantAdID {
				t.Errorf("platform, ip, adid = %q, %q, %q; want %q, %q, %q", h.Platform, h.IP, h.AdID, tt.wantPlatform, tt.wantIP, tt.wantAdID)
			}
			if h.UserAgent != tt.ua || h.AcceptLanguage != "en-GB,en;q=0.9" || h.Referer != "https://news.example/" {
				t.Errorf("headers = %q, %q, %q", h.UserAgent, h.AcceptLanguage, h.Referer)
			}
			if h.ID == "" || len(h.ID) > 32 || url.PathEscape(h.ID) != h.ID || h.Time.IsZero() || h.Fingerprint == "" {
				t.Errorf("id, time, fingerprint = %q, %v, %q", h.ID, h.Time, h.Fingerprint)
			}
			if tt.name == "android" {
				if h.Params["utm_source"] != "news" || h.ClientHints["sec-ch-ua-platform"] != `"Android"` {
					t.Errorf("params = %v, hints = %v", h.Params, h.ClientHints)
				}
				u, _ := url.Parse(locations[tt.name])
				ev := tapline.Event{Referrer: u.Query().Get("referrer")}
				if got := ev.ReferrerHitID(); got != h.ID {
					t.Errorf("referrer hit id = %q, want %q (Location %q)", got, h.ID, locations[tt.name])
				}
				if ref, _ := url.ParseQuery(ev.Referrer); ref.Get("utm_campaign") != "spring" {
					t.Errorf("referrer %q lost utm_campaign", ev.Referrer)
				}
			}
		})
	}
}

func TestRedirectUnknownSlug(t *testing.T) {
	t.Parallel()
	e := newEnv(t, collector.Config{})
	for range 2 { // the second answer comes from the negative cache
		rec := e.do(httptest.NewRequest(http.MethodGet, "/l/nope", nil), "192.0.2.1:1")
		if rec.Code != http.StatusNotFound || !strings.Contains(rec.Header().Get("Content-Type"), "text/html") {
			t.Fatalf("status = %d, type = %q; want 404 text/html", rec.Code, rec.Header().Get("Content-Type"))
		}
	}
}

func TestRedirectWithoutBusOrDatabase(t *testing.T) {
	t.Parallel()
	// A batch of at most 3: the publisher's fill takes hits as they
	// arrive, so with the default batch size a retried batch could hold
	// every hit that came while it was filled.
	e := newEnv(t, collector.Config{HitQueueSize: 2, HitBatchSize: 3, PublishTimeout: 50 * time.Millisecond, DrainTimeout: 100 * time.Millisecond})
	// Warm the link cache, then take the bus and the database away.
	if rec := e.do(httptest.NewRequest(http.MethodGet, "/l/demo", nil), "192.0.2.1:1"); rec.Code != http.StatusFound {
		t.Fatalf("warm-up status = %d, want 302", rec.Code)
	}
	hits(t, e.bus, 1)
	if err := e.bus.Close(); err != nil {
		t.Fatal(err)
	}
	e.db.Close()

	const n = 20
	for i := range n {
		rec := e.do(httptest.NewRequest(http.MethodGet, "/l/demo", nil), "192.0.2.1:1")
		if rec.Code != http.StatusFound {
			t.Fatalf("request %d: status = %d, want 302", i, rec.Code)
		}
	}
	// At most the queue (2) and the batch being retried (3) are held.
	if got := metricValue(t, e.c.Registry, "tapline_collector_hits_dropped_total", nil); got < n-5 {
		t.Errorf("dropped = %v, want at least %d", got, n-5)
	}
	// A slug never seen needs the database: 503 page.
	rec := e.do(httptest.NewRequest(http.MethodGet, "/l/other", nil), "192.0.2.1:1")
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "<html") {
		t.Errorf("cold lookup status = %d, want 503 page", rec.Code)
	}
}

// readFixture parses a recorded SDK request: leading # lines are comments,
// the rest is the raw HTTP/1.1 request.
func readFixture(tb testing.TB, path string) *http.Request {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	for bytes.HasPrefix(b, []byte("#")) {
		_, b, _ = bytes.Cut(b, []byte("\n"))
	}
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b)))
	if err != nil {
		tb.Fatalf("read %s: %v", path, err)
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		tb.Fatalf("read %s body: %v", path, err)
	}
	if int64(len(body)) != req.ContentLength {
		tb.Fatalf("%s: body is %d bytes, Content-Length says %d", path, len(body), req.ContentLength)
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.RequestURI = ""
	req.RemoteAddr = "203.0.113.9:50000"
	return req
}

func TestTapstreamFixtures(t *testing.T) {
	t.Parallel()
	e := newEnv(t, collector.Config{})
	const (
		iosIDFA = "6d92078a-8246-4ba4-ae5b-76104861e7dc"
		gaid    = "38400000-8cf0-11bd-b23e-10b96e40000d"
	)
	tests := []struct {
		file      string
		name      string
		kind      tapline.EventKind
		platform  tapline.Platform
		osVersion string
		model     string
		adID      string
		revenue   *tapline.Revenue
		params    map[string]string
		createdMs int64
	}{
		{"ios_install", "ios-demo-install", tapline.KindInstall, tapline.PlatformIOS, "17.4.1", "iPhone15,2", iosIDFA, nil, nil, 1714564800000},
		{"ios_open", "ios-demo-open", tapline.KindOpen, tapline.PlatformIOS, "17.4.1", "iPhone15,2", iosIDFA, nil, nil, 1714564801000},
		{"ios_purchase", "ios-demo-purchase-com_example_coins100", tapline.KindPurchase, tapline.PlatformIOS, "17.4.1", "iPhone15,2", iosIDFA,
			&tapline.Revenue{Micros: 1_980_000, Currency: "USD"},
			map[string]string{"purchase-transaction-id": "1000000123456789", "purchase-product-id": "com.example.coins100", "purchase-quantity": "2"}, 1714564900000},
		{"ios_custom", "level_complete", tapline.KindCustom, tapline.PlatformIOS, "17.4.1", "iPhone15,2", iosIDFA, nil,
			map[string]string{"level": "3", "mode": "hard mode"}, 1714565000000},
		{"android_install", "android-demo-install", tapline.KindInstall, tapline.PlatformAndroid, "14", "Pixel 7", gaid, nil, nil, 1714564800000},
		{"android_purchase", "android-demo-purchase-coins_100", tapline.KindPurchase, tapline.PlatformAndroid, "14", "Pixel 7", gaid,
			&tapline.Revenue{Micros: 4_990_000, Currency: "EUR"},
			map[string]string{"purchase-transaction-id": "GPA.3371-2280-1234-56789", "purchase-product-id": "coins_100", "purchase-quantity": "1"}, 1714565100000},
		{"android_custom", "level complete", tapline.KindCustom, tapline.PlatformAndroid, "14", "Pixel 7", gaid, nil,
			map[string]string{"level": "3", "coins": "250"}, 1714565200000},
	}
	ids := map[string]string{}
	for _, tt := range tests {
		for attempt := range 2 { // an SDK retry sends the same bytes again
			rec := e.do(readFixture(t, filepath.Join("testdata", "tapstream", tt.file+".http")), "")
			if rec.Code != http.StatusOK {
				t.Fatalf("%s attempt %d: status = %d, body %s", tt.file, attempt, rec.Code, rec.Body)
			}
		}
	}
	got := map[string][]*tapline.Event{}
	for _, ev := range events(t, e.bus, 2*len(tests)) {
		got[ev.Name] = append(got[ev.Name], ev)
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			evs := got[tt.name]
			if len(evs) != 2 {
				t.Fatalf("events named %q = %d, want 2 (names seen: %v)", tt.name, len(evs), keys(got))
			}
			ev := evs[0]
			if evs[1].ID != ev.ID {
				t.Errorf("retry id = %q, want %q", evs[1].ID, ev.ID)
			}
			if other, ok := ids[ev.ID]; ok {
				t.Errorf("id %q shared with %s", ev.ID, other)
			}
			ids[ev.ID] = tt.file
			if ev.AppID != e.app.ID || ev.Kind != tt.kind || ev.Protocol != "tapstream" || ev.IP != "203.0.113.9" {
				t.Errorf("app, kind, protocol, ip = %d, %q, %q, %q; want %d, %q, tapstream, 203.0.113.9", ev.AppID, ev.Kind, ev.Protocol, ev.IP, e.app.ID, tt.kind)
			}
			if ev.Device.Platform != tt.platform || ev.Device.OSVersion != tt.osVersion || ev.Device.Model != tt.model || ev.Device.AdID() != tt.adID {
				t.Errorf("device = %+v, want %s %s %s %s", ev.Device, tt.platform, tt.osVersion, tt.model, tt.adID)
			}
			if want := time.UnixMilli(tt.createdMs).UTC(); !ev.Time.Equal(want) {
				t.Errorf("time = %v, want %v", ev.Time, want)
			}
			if (ev.Revenue == nil) != (tt.revenue == nil) || (ev.Revenue != nil && *ev.Revenue != *tt.revenue) {
				t.Errorf("revenue = %+v, want %+v", ev.Revenue, tt.revenue)
			}
			if fmt.Sprint(ev.Params) != fmt.Sprint(tt.params) {
				t.Errorf("params = %v, want %v", ev.Params, tt.params)
			}
			if ev.Fingerprint == "" || ev.InstallID == "" {
				t.Errorf("fingerprint, install id = %q, %q", ev.Fingerprint, ev.InstallID)
			}
			if tt.platform == tapline.PlatformAndroid {
				if ev.ReferrerHitID() != "06c8k2v5n0q8t3b1m9r4e7f2a0" || ev.Device.LimitAdTracking {
					t.Errorf("referrer = %q lat = %v", ev.Referrer, ev.Device.LimitAdTracking)
				}
			} else if ev.Device.IDFV != "3f2504e0-4f89-11d3-9a0c-0305e82c3301" || ev.Device.Locale != "en_US" {
				t.Errorf("idfv, locale = %q, %q", ev.Device.IDFV, ev.Device.Locale)
			}
		})
	}
	if got := metricValue(t, e.c.Registry, "tapline_collector_events_accepted_total", map[string]string{"protocol": "tapstream"}); got != float64(2*len(tests)) {
		t.Errorf("events accepted = %v, want %d", got, 2*len(tests))
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestTapstreamErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, collector.Config{MaxBodyBytes: 4096})
	ok := "secret=" + demoSecret + "&uuid=U&platform=iOS&created-ms=1714564800000"
	tests := []struct {
		name, path, body string
		wantStatus       int
		wantCode         string
	}{
		{"wrong secret", "/demo/event/ios-demo-open/", "secret=nope&uuid=U", 403, tapline.EFORBIDDEN},
		{"missing secret", "/demo/event/ios-demo-open/", "uuid=U", 403, tapline.EFORBIDDEN},
		{"unknown account", "/nobody/event/ios-demo-open/", ok, 404, tapline.ENOTFOUND},
		{"missing uuid", "/demo/event/ios-demo-open/", "secret=" + demoSecret, 400, tapline.EINVALID},
		{"bad created-ms", "/demo/event/ios-demo-open", ok + "x", 400, tapline.EINVALID},
		{"oversize", "/demo/event/ios-demo-open/", ok + "&custom-pad=" + strings.Repeat("a", 5000), 413, tapline.ETOOLARGE},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest(http.MethodPost, tt.path, strings.NewReader(tt.body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			rec := e.do(req, "192.0.2.1:1")
			var body struct{ Error, Message string }
			_ = json.Unmarshal(rec.Body.Bytes(), &body)
			if rec.Code != tt.wantStatus || body.Error != tt.wantCode || body.Message == "" {
				t.Fatalf("status = %d, body = %s; want %d %s", rec.Code, rec.Body, tt.wantStatus, tt.wantCode)
			}
		})
	}
}

func TestTapstreamBusDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, collector.Config{PublishTimeout: 200 * time.Millisecond})
	if err := e.bus.Close(); err != nil {
		t.Fatal(err)
	}
	req := readFixture(t, filepath.Join("testdata", "tapstream", "ios_install.http"))
	rec := e.do(req, "")
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("status = %d, Retry-After = %q; want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
	if got := metricValue(t, e.c.Registry, "tapline_collector_publish_errors_total", map[string]string{"topic": "events"}); got != 1 {
		t.Errorf("publish errors = %v, want 1", got)
	}
}

func batchRequest(key, body string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, "/v1/events", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	return req
}

func TestBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, collector.Config{MaxBodyBytes: 8192, MaxBatchEvents: 3})
	valid := func(id string) string {
		return `{"id":"` + id + `","name":"install","time":"2024-05-01T11:00:00Z","install_id":"I-` + id +
			`","device":{"platform":"android","os_version":"14","model":"Pixel 7","gaid":"38400000-8CF0-11BD-B23E-10B96E40000D"},"referrer":"tapline_hit=H1","x-extra":true}`
	}
	invalid := `{"id":"bad","name":"","install_id":"I","device":{"platform":"ios"}}`
	tests := []struct {
		name, key, body string
		wantStatus      int
		wantAccepted    int
		wantStatuses    []string
	}{
		{"accepted", demoKey, `{"events":[` + valid("a1") + `,` + valid("a2") + `]}`, 200, 2, []string{"accepted", "accepted"}},
		{"mixed", demoKey, `{"events":[` + valid("m1") + `,` + invalid + `]}`, 200, 1, []string{"accepted", "rejected"}},
		{"all invalid", demoKey, `{"events":[` + invalid + `,` + invalid + `]}`, 400, 0, []string{"rejected", "rejected"}},
		{"too many", demoKey, `{"events":[` + valid("t1") + `,` + valid("t2") + `,` + valid("t3") + `,` + valid("t4") + `]}`, 400, 0, nil},
		{"oversize", demoKey, `{"events":[` + valid("o1") + `],"pad":"` + strings.Repeat("x", 9000) + `"}`, 413, 0, nil},
		{"malformed", demoKey, `{"events":[`, 400, 0, nil},
		{"bad key", "wrong-key", `{"events":[` + valid("k1") + `]}`, 401, 0, nil},
		{"no key", "", `{"events":[` + valid("k2") + `]}`, 401, 0, nil},
	}
	accepted := 0
	for _, tt := range tests {
		rec := e.do(batchRequest(tt.key, tt.body), "192.0.2.44:1")
		if rec.Code != tt.wantStatus {
			t.Errorf("%s: status = %d, want %d (body %s)", tt.name, rec.Code, tt.wantStatus, rec.Body)
			continue
		}
		accepted += tt.wantAccepted
		if tt.wantStatuses == nil {
			var body struct{ Error, Message string }
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error == "" || body.Message == "" {
				t.Errorf("%s: error body = %s", tt.name, rec.Body)
			}
			continue
		}
		var resp collector.BatchResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
			t.Fatalf("%s: decode %s: %v", tt.name, rec.Body, err)
		}
		var statuses []string
		for _, r := range resp.Results {
			statuses = append(statuses, r.Status)
		}
		if fmt.Sprint(statuses) != fmt.Sprint(tt.wantStatuses) || resp.Accepted != tt.wantAccepted {
			t.Errorf("%s: statuses = %v accepted = %d, want %v %d", tt.name, statuses, resp.Accepted, tt.wantStatuses, tt.wantAccepted)
		}
	}
	// Resending a batch publishes the same ids again; the matcher's
	// put-if-absent counts each once.
	if rec := e.do(batchRequest(demoKey, `{"events":[`+valid("a1")+`,`+valid("a2")+`]}`), "192.0.2.44:1"); rec.Code != 200 {
		t.Fatalf("resend status = %d", rec.Code)
	}
	accepted += 2
	evs := events(t, e.bus, accepted)
	count := map[string]int{}
	for _, ev := range evs {
		count[ev.ID]++
		if ev.AppID != e.app.ID || ev.Protocol != "v1" || ev.IP != "192.0.2.44" || ev.Device.GAID != "38400000-8cf0-11bd-b23e-10b96e40000d" ||
			ev.Kind != tapline.KindInstall || ev.ReferrerHitID() != "H1" || ev.Fingerprint == "" {
			t.Errorf("event = %+v", ev)
		}
	}
	if count["a1"] != 2 || count["a2"] != 2 || count["m1"] != 1 || len(count) != 3 {
		t.Errorf("published ids = %v, want a1×2 a2×2 m1×1", count)
	}
}

func TestBatchBusDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, collector.Config{PublishTimeout: 200 * time.Millisecond})
	_ = e.bus.Close()
	body := `{"events":[{"id":"x","name":"open","install_id":"I","device":{"platform":"ios"}}]}`
	rec := e.do(batchRequest(demoKey, body), "192.0.2.1:1")
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("status = %d, want 503 with Retry-After", rec.Code)
	}
}

func TestPixel(t *testing.T) {
	t.Parallel()
	e := newEnv(t, collector.Config{})
	other := &tapline.Account{Name: "other"}
	if err := e.accounts.CreateAccount(context.Background(), other, &tapline.User{Email: "other@example.com"}, "pw-other-123"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, path string
		wantStatus         int
	}{
		{"get", http.MethodGet, "/demo/hit/demo.gif?case=get", 200},
		{"sdk post", http.MethodPost, "/demo/hit/demo.gif?case=post", 200},
		{"unknown tracker", http.MethodGet, "/demo/hit/nope.gif", 404},
		{"other account", http.MethodGet, "/other/hit/demo.gif", 404},
		{"unknown account", http.MethodGet, "/nobody/hit/demo.gif", 404},
	}
	for _, tt := range tests {
		var body io.Reader
		if tt.method == http.MethodPost {
			body = strings.NewReader("__ts=spring,email")
		}
		req := httptest.NewRequest(tt.method, tt.path, body)
		if body != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		rec := e.do(req, "198.51.100.3:1")
		if rec.Code != tt.wantStatus || rec.Header().Get("Content-Type") != "image/gif" ||
			rec.Header().Get("Cache-Control") != "no-store" || !bytes.HasPrefix(rec.Body.Bytes(), []byte("GIF89a")) {
			t.Errorf("%s: status = %d type = %q body %q; want %d GIF", tt.name, rec.Code, rec.Header().Get("Content-Type"), rec.Body.Bytes(), tt.wantStatus)
		}
	}
	got := map[string]*tapline.Hit{}
	for _, h := range hits(t, e.bus, 2) {
		got[h.Params["case"]] = h
	}
	if h := got["get"]; h == nil || h.LinkID != e.link.ID || h.IP != "198.51.100.3" {
		t.Errorf("get hit = %+v", h)
	}
	if h := got["post"]; h == nil || h.Params["__ts"] != "spring,email" {
		t.Errorf("post hit = %+v", h)
	}
}

// TestPixelBodyLimit posts a pixel body over MaxBodyBytes and checks it is
// answered 413 and not counted: the next hit is the only one published.
func TestPixelBodyLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, collector.Config{MaxBodyBytes: 64})
	req := httptest.NewRequest(http.MethodPost, "/demo/hit/demo.gif?case=big", strings.NewReader("__ts="+strings.Repeat("x", 100)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := e.do(req, "198.51.100.4:1")
	if rec.Code != http.StatusRequestEntityTooLarge || !strings.Contains(rec.Body.String(), "over 64 bytes") {
		t.Errorf("oversized pixel post: %d %q, want 413 saying the body is over 64 bytes", rec.Code, rec.Body)
	}
	if rec := e.do(httptest.NewRequest(http.MethodGet, "/demo/hit/demo.gif?case=after", nil), "198.51.100.4:1"); rec.Code != http.StatusOK {
		t.Fatalf("pixel get: %d", rec.Code)
	}
	got := hits(t, e.bus, 1)
	if len(got) != 1 || got[0].Params["case"] != "after" {
		t.Errorf("published %d hits, first %+v; want only the one after the refused post", len(got), got[0])
	}
}

func TestMetricsAndHealth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, collector.Config{})
	e.do(httptest.NewRequest(http.MethodGet, "/l/demo", nil), "192.0.2.1:1")
	e.do(httptest.NewRequest(http.MethodGet, "/l/missing", nil), "192.0.2.1:1")
	hits(t, e.bus, 1)

	rec := e.do(httptest.NewRequest(http.MethodGet, "/healthz", nil), "192.0.2.1:1")
	if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != "ok" {
		t.Errorf("healthz = %d %q, want 200 ok", rec.Code, rec.Body)
	}
	rec = e.do(httptest.NewRequest(http.MethodGet, "/metrics", nil), "192.0.2.1:1")
	text := rec.Body.String()
	for _, want := range []string{
		`tapline_collector_requests_total{code="302",route="/l/{slug}"} 1`,
		`tapline_collector_requests_total{code="404",route="/l/{slug}"} 1`,
		`tapline_collector_hits_published_total 1`,
		`tapline_collector_hits_dropped_total 0`,
		`tapline_collector_hit_queue_depth`,
		`tapline_collector_request_duration_seconds_bucket{route="/l/{slug}"`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	if err := e.c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if rec := e.do(httptest.NewRequest(http.MethodGet, "/healthz", nil), "192.0.2.1:1"); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("healthz after Close = %d, want 503", rec.Code)
	}
}

func TestCloseDrainsQueue(t *testing.T) {
	t.Parallel()
	e := newEnv(t, collector.Config{})
	const n = 50
	for range n {
		if rec := e.do(httptest.NewRequest(http.MethodGet, "/l/demo", nil), "192.0.2.1:1"); rec.Code != http.StatusFound {
			t.Fatalf("status = %d", rec.Code)
		}
	}
	if err := e.c.Close(); err != nil {
		t.Fatal(err)
	}
	hits(t, e.bus, n)
	if got := metricValue(t, e.c.Registry, "tapline_collector_hits_published_total", nil); got != n {
		t.Errorf("published = %v, want %d", got, n)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		mutate    func(*collector.Config)
		wantField string
	}{
		{"defaults", func(*collector.Config) {}, ""},
		{"queue", func(c *collector.Config) { c.HitQueueSize = -1 }, "HitQueueSize"},
		{"body", func(c *collector.Config) { c.MaxBodyBytes = -1 }, "MaxBodyBytes"},
		{"batch", func(c *collector.Config) { c.MaxBatchEvents = -5 }, "MaxBatchEvents"},
		{"timeout", func(c *collector.Config) { c.PublishTimeout = -time.Second }, "PublishTimeout"},
		{"proxy", func(c *collector.Config) { c.TrustedProxies = []netip.Prefix{{}} }, "TrustedProxies"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := collector.New(collector.Config{}, nil, nil)
			tt.mutate(&c.Config)
			err := c.Config.Validate()
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantField) {
				t.Fatalf("err = %v, want one naming %s", err, tt.wantField)
			}
		})
	}
}

func TestRedirectKeepsAdIDPastTheParamCap(t *testing.T) {
	t.Parallel()
	e := newEnv(t, collector.Config{})
	q := url.Values{}
	for i := range 70 {
		q.Set(fmt.Sprintf("p%02d", i), "x")
	}
	q.Set("gaid", "38400000-8CF0-11BD-B23E-10B96E40000D")
	rec := e.do(httptest.NewRequest(http.MethodGet, "/l/demo?"+q.Encode(), nil), "192.0.2.1:1")
	if rec.Code != http.StatusFound {
		t.Fatalf("status = %d, want 302", rec.Code)
	}
	h := hits(t, e.bus, 1)[0]
	if h.AdID != "38400000-8cf0-11bd-b23e-10b96e40000d" {
		t.Fatalf("ad id = %q, want the gaid parameter's, normalised", h.AdID)
	}
	if len(h.Params) != 50 || h.Params["p00"] != "x" || h.Params["p60"] != "" {
		t.Fatalf("kept %d params (p00=%q, p60=%q); want the first 50 by name after the ad id", len(h.Params), h.Params["p00"], h.Params["p60"])
	}
}

// TestRedirectAddsTheLinksParams checks that a tap carries its link's
// parameters where its URL has none of the name, and that an archived
// link still redirects and records its taps (ads may still carry it).
func TestRedirectAddsTheLinksParams(t *testing.T) {
	t.Parallel()
	e := newEnv(t, collector.Config{})
	archived := time.Now()
	link := &tapline.Link{AppID: e.app.ID, Slug: "spring", Params: map[string]string{"utm_source": "facebook", "utm_campaign": "spring"},
		ArchivedAt: &archived}
	if err := e.accounts.CreateLink(context.Background(), link); err != nil {
		t.Fatal(err)
	}
	rec := e.do(httptest.NewRequest(http.MethodGet, "/l/spring?utm_campaign=spring-b&ad=7", nil), "192.0.2.1:1")
	if rec.Code != http.StatusFound {
		t.Fatalf("status = %d, want 302 (an archived link still redirects)", rec.Code)
	}
	h := hits(t, e.bus, 1)[0]
	if h.LinkID != link.ID || h.Params["utm_source"] != "facebook" || h.Params["utm_campaign"] != "spring-b" || h.Params["ad"] != "7" {
		t.Fatalf("hit of link %d with params %v: want the link's utm_source, the tap's utm_campaign and ad", h.LinkID, h.Params)
	}
}

// TestRedirectMarksBots checks that link previewers, crawlers, HEAD
// requests and prefetches get their redirect like anyone, and that their
// hits go to the bus marked as no taps, and counted in the metrics.
func TestRedirectMarksBots(t *testing.T) {
	t.Parallel()
	e := newEnv(t, collector.Config{})
	tests := []struct {
		name, method, ua string
		header           map[string]string
		want             string
	}{
		{"person", http.MethodGet, iphoneUA, nil, ""},
		{"facebook", http.MethodGet, "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", nil, "facebookexternalhit"},
		{"slack", http.MethodGet, "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", nil, "slackbot"},
		{"head", http.MethodHead, iphoneUA, nil, "head"},
		{"prefetch", http.MethodGet, androidUA, map[string]string{"Sec-Purpose": "prefetch;prerender"}, "prefetch"},
	}
	for _, tt := range tests {
		req := httptest.NewRequest(tt.method, "/l/demo?case="+tt.name, nil)
		req.Header.Set("User-Agent", tt.ua)
		for k, v := range tt.header {
			req.Header.Set(k, v)
		}
		if rec := e.do(req, "192.0.2.9:1"); rec.Code != http.StatusFound || rec.Header().Get("Location") == "" {
			t.Errorf("%s: %d to %q, want a redirect", tt.name, rec.Code, rec.Header().Get("Location"))
		}
	}
	got := map[string]string{}
	for _, h := range hits(t, e.bus, len(tests)) {
		got[h.Params["case"]] = h.Bot
	}
	for _, tt := range tests {
		if b, ok := got[tt.name]; !ok || b != tt.want {
			t.Errorf("%s: hit marked %q (recorded %v), want %q", tt.name, b, ok, tt.want)
		}
	}
	metrics := e.do(httptest.NewRequest(http.MethodGet, "/metrics", nil), "127.0.0.1:1").Body.String()
	if !strings.Contains(metrics, `tapline_collector_bot_hits_total{reason="facebookexternalhit"} 1`) {
		t.Errorf("the metrics lack the previewer's request")
	}
}

// TestRedirectRateLimit checks that an address tapping far faster than a
// person still gets every redirect, that its hits past the rate are
// published marked rate-limited and, past ten times the rate, dropped and
// counted, and that another address is not touched.
func TestRedirectRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, collector.Config{TapRate: 0.001, TapBurst: 2})
	tap := func(i int, peer string) {
		req := httptest.NewRequest(http.MethodGet, "/l/demo?n="+strconv.Itoa(i), nil)
		req.Header.Set("User-Agent", iphoneUA)
		if rec := e.do(req, peer); rec.Code != http.StatusFound {
			t.Fatalf("tap %d from %s: %d, want a redirect whatever the rate", i, peer, rec.Code)
		}
	}
	for i := range 30 {
		tap(i, "192.0.2.50:1")
	}
	tap(100, "192.0.2.51:1")
	// Burst 2 counted as taps; the drop bucket (ten times: burst 20) lets
	// 18 more through marked; 10 dropped.
	var plain, marked int
	for _, h := range hits(t, e.bus, 21) {
		switch {
		case h.IP == "192.0.2.51":
			if h.Bot != "" {
				t.Errorf("another address's tap marked %q", h.Bot)
			}
		case h.Bot == "":
			plain++
		case h.Bot == "rate-limited":
			marked++
		}
	}
	if plain != 2 || marked != 18 {
		t.Errorf("%d taps and %d marked hits, want 2 and 18", plain, marked)
	}
	metrics := e.do(httptest.NewRequest(http.MethodGet, "/metrics", nil), "127.0.0.1:1").Body.String()
	if !strings.Contains(metrics, `tapline_collector_hits_rate_limited_total{outcome="dropped"} 10`) ||
		!strings.Contains(metrics, `tapline_collector_hits_rate_limited_total{outcome="marked"} 18`) {
		t.Errorf("the metrics lack the rate-limited hits")
	}
}

// TestRedirectClientHintRetry checks the client-hint handshake: a redirect
// asks for the model and OS version (Accept-CH, Critical-CH); a Chromium
// request without them and its retry with them make one hit, the retry's;
// a first request whose retry never comes is recorded after the wait.
func TestRedirectClientHintRetry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, collector.Config{HintRetryWait: 300 * time.Millisecond})
	const reduced = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36"
	tap := func(query string, hints map[string]string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/l/demo?"+query, nil)
		req.Header.Set("User-Agent", reduced)
		req.Header.Set("Sec-CH-UA", `"Chromium";v="131", "Google Chrome";v="131"`)
		req.Header.Set("Sec-CH-UA-Mobile", "?1")
		req.Header.Set("Sec-CH-UA-Platform", `"Android"`)
		for k, v := range hints {
			req.Header.Set(k, v)
		}
		return e.do(req, "192.0.2.60:1")
	}
	first := tap("case=retried", nil)
	if first.Code != http.StatusFound || !strings.Contains(first.Header().Get("Critical-CH"), "Sec-CH-UA-Model") ||
		!strings.Contains(first.Header().Get("Accept-CH"), "Sec-CH-UA-Platform-Version") {
		t.Fatalf("first request: %d, Accept-CH %q, Critical-CH %q", first.Code, first.Header().Get("Accept-CH"), first.Header().Get("Critical-CH"))
	}
	if rec := tap("case=retried", map[string]string{"Sec-CH-UA-Model": `"Pixel 7"`, "Sec-CH-UA-Platform-Version": `"14.0.0"`}); rec.Code != http.StatusFound {
		t.Fatalf("retry: %d", rec.Code)
	}
	tap("case=alone", nil) // no retry: recorded after the wait
	got := hits(t, e.bus, 2)
	byCase := map[string][]*tapline.Hit{}
	for _, h := range got {
		byCase[h.Params["case"]] = append(byCase[h.Params["case"]], h)
	}
	if r := byCase["retried"]; len(r) != 1 || r[0].Model != "Pixel 7" || r[0].OSVersion != "14.0.0" || r[0].Bot != "" {
		t.Errorf("the retried tap: %+v, want one hit with the hints' model and OS version", r)
	}
	if a := byCase["alone"]; len(a) != 1 || a[0].Bot != "" {
		t.Errorf("the tap without a retry: %+v, want one plain hit", a)
	}
	time.Sleep(500 * time.Millisecond) // past the wait: the replaced first request must not come
	if all := fetch(t, e.bus, tapline.TopicHits, 2); len(all) != 2 {
		t.Errorf("%d hits on the bus, want 2", len(all))
	}
	metrics := e.do(httptest.NewRequest(http.MethodGet, "/metrics", nil), "127.0.0.1:1").Body.String()
	if !strings.Contains(metrics, "tapline_collector_hint_retries_total 1") {
		t.Errorf("the metrics lack the retried tap")
	}

	// Two people behind one address tap the link at once, one browser
	// already sending the hints: neither replaces the other's tap.
	tap("case=shared", map[string]string{"Accept-Language": "fr-FR"})
	tap("case=shared", map[string]string{"Accept-Language": "de-DE", "Sec-CH-UA-Model": `"SM-S918B"`, "Sec-CH-UA-Platform-Version": `"14.0.0"`})
	// A held tap when the collector closes is published, not lost.
	tap("case=closing", nil)
	if err := e.c.Close(); err != nil {
		t.Fatal(err)
	}
	shared, closing := 0, 0
	for _, h := range hits(t, e.bus, 5) {
		switch h.Params["case"] {
		case "shared":
			shared++
		case "closing":
			closing++
		}
	}
	if shared != 2 || closing != 1 {
		t.Errorf("%d hits of the two people's taps (want 2) and %d of the tap held at close (want 1)", shared, closing)
	}
}

// TestBinaryMessages: a collector with BinaryMessages (the embedded bus)
// publishes the same hits and events as one with JSON (Kafka), in the
// binary format of package wire, which the matcher decodes.
func TestBinaryMessages(t *testing.T) {
	t.Parallel()
	body := `{"events":[{"id":"b1","name":"purchase","time":"2024-05-01T11:00:00Z","install_id":"I-b1",` +
		`"device":{"platform":"android","os_version":"14","model":"Pixel 7"},"revenue":{"amount":"4.99","currency":"EUR"},"params":{"sku":"gems"}}]}`
	published := func(binary bool) (hit, event tapline.Message) {
		e := newEnv(t, collector.Config{BinaryMessages: binary})
		req := httptest.NewRequest(http.MethodGet, "/l/demo?utm_source=news", nil)
		req.Header.Set("User-Agent", androidUA)
		if rec := e.do(req, "203.0.113.5:4000"); rec.Code != http.StatusFound {
			t.Fatalf("redirect status = %d", rec.Code)
		}
		if rec := e.do(batchRequest(demoKey, body), "192.0.2.44:1"); rec.Code != http.StatusOK {
			t.Fatalf("batch status = %d: %s", rec.Code, rec.Body)
		}
		return fetch(t, e.bus, tapline.TopicHits, 1)[0], fetch(t, e.bus, tapline.TopicEvents, 1)[0]
	}
	jh, je := published(false)
	bh, be := published(true)
	for _, m := range []tapline.Message{jh, je} {
		if m.Value[0] != '{' {
			t.Errorf("JSON collector published %q, want a JSON object", m.Value)
		}
	}
	for _, m := range []tapline.Message{bh, be} {
		if m.Value[0] == '{' || json.Valid(m.Value) {
			t.Errorf("binary collector published JSON: %q", m.Value)
		}
	}
	var jsonHit, binHit tapline.Hit
	if err := json.Unmarshal(jh.Value, &jsonHit); err != nil {
		t.Fatal(err)
	}
	if err := wire.DecodeHit(bh.Value, &binHit); err != nil {
		t.Fatalf("decode binary hit: %v", err)
	}
	// Two taps: their ids and times differ, everything else is equal.
	binHit.ID, binHit.Time = jsonHit.ID, jsonHit.Time
	if !reflect.DeepEqual(jsonHit, binHit) {
		t.Errorf("binary hit = %+v\nJSON hit = %+v", binHit, jsonHit)
	}
	if binHit.Params["utm_source"] != "news" || binHit.Fingerprint == "" || string(bh.Key) != string(jh.Key) {
		t.Errorf("binary hit lost its parameters, fingerprint or key: %+v, key %q", binHit, bh.Key)
	}
	var jsonEvent, binEvent tapline.Event
	if err := json.Unmarshal(je.Value, &jsonEvent); err != nil {
		t.Fatal(err)
	}
	if err := wire.DecodeEvent(be.Value, &binEvent); err != nil {
		t.Fatalf("decode binary event: %v", err)
	}
	binEvent.ReceivedAt = jsonEvent.ReceivedAt
	if !reflect.DeepEqual(jsonEvent, binEvent) {
		t.Errorf("binary event = %+v\nJSON event = %+v", binEvent, jsonEvent)
	}
	if binEvent.Revenue == nil || binEvent.Revenue.Micros != 4_990_000 || binEvent.Revenue.Currency != "EUR" {
		t.Errorf("binary event revenue = %+v, want 4.99 EUR", binEvent.Revenue)
	}
}

// countingBus counts the Publish calls reaching a bus.
type countingBus struct {
	tapline.Bus
	publishes atomic.Int64
}

func (b *countingBus) Publish(ctx context.Context, msgs ...tapline.Message) error {
	b.publishes.Add(1)
	return b.Bus.Publish(ctx, msgs...)
}

// TestHitLinger: the hits of a burst of taps within HitLinger go to the
// bus in one publish, and Close publishes hits still lingering.
func TestHitLinger(t *testing.T) {
	t.Parallel()
	e := newEnv(t, collector.Config{})
	for _, tc := range []struct {
		name          string
		linger        time.Duration
		closeAtOnce   bool
		wantPublishes int64
	}{
		{"burst", time.Second, false, 1},
		{"closed while lingering", time.Hour, true, 1},
	} {
		bus := &countingBus{Bus: e.bus}
		c := collector.New(collector.Config{HitLinger: tc.linger, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, e.accounts, bus)
		c.Logger = slog.New(slog.DiscardHandler)
		if err := c.Open(context.Background()); err != nil {
			t.Fatal(err)
		}
		h := c.Handler()
		const taps = 20
		for i := range taps {
			req := httptest.NewRequest(http.MethodGet, fmt.Sprintf("/l/demo?case=%s-%d", strings.ReplaceAll(tc.name, " ", "-"), i), nil)
			req.Header.Set("User-Agent", iphoneUA)
			req.RemoteAddr = fmt.Sprintf("198.51.100.%d:1", i+1)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusFound {
				t.Fatalf("%s: tap %d: %d", tc.name, i, rec.Code)
			}
		}
		if !tc.closeAtOnce {
			deadline := time.Now().Add(10 * time.Second)
			for bus.publishes.Load() == 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if got := bus.publishes.Load(); got != tc.wantPublishes {
			t.Errorf("%s: %d publishes for %d taps, want %d", tc.name, got, taps, tc.wantPublishes)
		}
	}
	got := 0
	for _, h := range hits(t, e.bus, 40) {
		if strings.HasPrefix(h.Params["case"], "burst-") || strings.HasPrefix(h.Params["case"], "closed-while-lingering-") {
			got++
		}
	}
	if got != 40 {
		t.Errorf("%d of the 40 taps' hits on the bus", got)
	}
}
