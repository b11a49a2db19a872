package node

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"tapline"
	"tapline/pebble"
	"tapline/postgres/pgtest"
)

// TestScaleOutTargets runs the collector, the matcher and the dashboard as
// three separate nodes on one Kafka (kfake) and one PostgreSQL, and follows
// a tap and an install through them to the dashboard's JSON.
func TestScaleOutTargets(t *testing.T) {
	ctx := context.Background()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close) // after the nodes' cleanups: those run first
	dbURL := pgtest.URL(t)
	token := strings.Repeat("t", 32)

	open := func(target string, demo bool) *Node {
		t.Helper()
		cfg := NewConfig()
		cfg.Target = target
		cfg.DatabaseURL = dbURL
		cfg.DataDir = t.TempDir()
		cfg.CollectorAddr, cfg.DashboardAddr, cfg.MetricsAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		cfg.KafkaBrokers = strings.Join(cluster.ListenAddrs(), ",")
		cfg.AdminToken = token
		cfg.PublicURL = "http://collector.example"
		cfg.Demo = demo
		cfg.TrustedProxy = "127.0.0.1"
		n := New(cfg, nil)
		if err := n.Open(ctx); err != nil {
			t.Fatalf("open %s: %v", target, err)
		}
		t.Cleanup(func() {
			if err := n.Close(); err != nil {
				t.Errorf("close %s: %v", target, err)
			}
		})
		return n
	}
	coll := open(TargetCollector, true)
	match := open(TargetMatcher, false)
	dash := open(TargetDashboard, false)
	if coll.Matcher != nil || coll.Dashboard != nil || match.Collector != nil || dash.Bus != nil {
		t.Fatal("a node runs components its target does not name")
	}
	// Without -cassandra-hosts the separate collector has no raw store:
	// the SDK's timeline lookups answer nothing found.
	if coll.Collector.RawStore != nil {
		t.Fatal("a collector without -cassandra-hosts has a raw store")
	}
	resp, err := http.Get(coll.CollectorURL + "/v1/timelines/summary?secret=" + DemoSDKSecret + "&event_session=s1&blocking=true")
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	_, _ = io.Copy(&sb, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || sb.String() != "{}" {
		t.Fatalf("timeline summary without a raw store: %d %q, want 200 {}", resp.StatusCode, sb.String())
	}
	resp, err = http.Get(match.MetricsURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("matcher /metrics: %d", resp.StatusCode)
	}

	client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodGet, coll.CollectorURL+"/l/"+DemoLinkSlug, nil)
	req.Header.Set("User-Agent", "Mozilla/5.0 (Linux; Android 14; Pixel 7 Build/UQ1A.240205.004; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/122.0.6261.105 Mobile Safari/537.36")
	req.Header.Set("X-Forwarded-For", "198.51.100.23")
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc == nil || loc.Host != "play.google.com" {
		t.Fatalf("tap: %d to %q, want 302 to the Play Store", resp.StatusCode, resp.Header.Get("Location"))
	}
	// The install reports the Play referrer it was given, from another
	// network: only the referrer can match it.
	form := url.Values{
		"secret": {DemoSDKSecret}, "sdkversion": {"4.0.0"}, "uuid": {"b7f8c2d4-0d7e-4f0e-9a55-0e1f2a3b4c5d"},
		"platform": {"Android"}, "vendor": {"Google"}, "model": {"Pixel 7"}, "os": {"Android 14"},
		"android-referrer": {loc.Query().Get("referrer")},
		"created-ms":       {strconv.FormatInt(time.Now().UnixMilli(), 10)},
	}
	req, _ = http.NewRequest(http.MethodPost, coll.CollectorURL+"/"+DemoAccount+"/event/android-demo-install", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Forwarded-For", "192.0.2.99")
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("install: %d, want 200", resp.StatusCode)
	}

	d := waitDay(t, dash, token, "a conversion", func(d tapline.DailyStats) bool { return d.Conversions == 1 })
	if d.Hits != 1 || d.Installs != 1 {
		t.Fatalf("day = %+v, want 1 hit and 1 install", d)
	}

	// The dashboard alone exports conversions, but has no raw store for
	// hits and events: it says what to configure.
	demo, err := SeedDemo(ctx, dash.Accounts)
	if err != nil {
		t.Fatal(err)
	}
	_, apiToken, err := dash.Accounts.CreateAPIToken(ctx, demo.Account.ID, "export")
	if err != nil {
		t.Fatal(err)
	}
	status, body := exportGet(t, dash, apiToken, demo.App.ID, "hits")
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "-cassandra-hosts") {
		t.Errorf("hits export on a dashboard without a raw store: %d %s, want 503 naming -cassandra-hosts", status, body)
	}
	status, body = exportGet(t, dash, apiToken, demo.App.ID, "conversions")
	if status != http.StatusOK || strings.Count(body, "\n") != 2 || !strings.Contains(body, `"complete":true,"rows":1}`) {
		t.Errorf("conversions export on the dashboard: %d %s, want the conversion and the trailer", status, body)
	}
}

// exportGet gets the export of kind of app from n's dashboard listener
// with an API token and returns the status and body.
func exportGet(t *testing.T, n *Node, token string, app int64, kind string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/api/v1/apps/%d/export/%s", n.DashboardURL, app, kind), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// waitDay polls the demo app's daily report on n's dashboard API until
// today's row satisfies done, failing the test after 30 s, and returns it.
func waitDay(t *testing.T, n *Node, token, what string, done func(tapline.DailyStats) bool) tapline.DailyStats {
	t.Helper()
	demo, err := SeedDemo(context.Background(), n.Accounts)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	today := time.Now().UTC().Format("2006-01-02")
	daily := fmt.Sprintf("%s/api/v1/apps/%d/daily?from=%s&to=%s", n.DashboardURL, demo.App.ID, today, today)
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, daily, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Days []tapline.DailyStats `json:"days"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(body.Days) == 1 && done(body.Days[0]) {
			return body.Days[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 30 s: %+v", what, body.Days)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestAllInOneOnKafka runs target "all" with Kafka as the bus: the same
// components, another backend.
func TestAllInOneOnKafka(t *testing.T) {
	ctx := context.Background()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	cfg := NewConfig()
	cfg.DatabaseURL = pgtest.URL(t)
	cfg.DataDir = t.TempDir()
	cfg.CollectorAddr, cfg.DashboardAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.KafkaBrokers = strings.Join(cluster.ListenAddrs(), ",")
	cfg.Demo = true
	cfg.RawCacheMB = 24
	n := New(cfg, nil)
	if err := n.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	if n.Spool == nil || n.Matcher == nil || n.Dashboard == nil || n.Matcher.Group == nil {
		t.Fatal("target all on Kafka lacks the spool, the matcher's group or the dashboard")
	}
	if raw, ok := n.Raw.(*pebble.RawStore); !ok || raw.CacheSize != 24<<20 {
		t.Fatalf("raw store %T, want the embedded one with -raw-cache-mb's 24 MiB cache", n.Raw)
	}
	const taps = 5
	for range taps {
		resp, err := http.DefaultTransport.RoundTrip(mustRequest(t, n.CollectorURL+"/l/"+DemoLinkSlug))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	demo, err := SeedDemo(ctx, n.Accounts)
	if err != nil {
		t.Fatal(err)
	}
	day := time.Now().UTC().Truncate(24 * time.Hour)
	deadline := time.Now().Add(30 * time.Second)
	for {
		days, err := n.Dashboard.Reports.DailyStats(ctx, tapline.StatsFilter{AppID: demo.App.ID, From: day, To: day.Add(24 * time.Hour), Location: time.UTC})
		if err != nil {
			t.Fatal(err)
		}
		if len(days) == 1 && days[0].Hits == taps {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("facts after 30 s: %+v, want %d hits", days, taps)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// openDemo opens an all-in-one node on a fresh database and data
// directory, with the demo account seeded; set, when given, changes the
// configuration first.
func openDemo(t *testing.T, set func(*Config)) (*Node, *Demo) {
	t.Helper()
	cfg := NewConfig()
	cfg.DatabaseURL = pgtest.URL(t)
	cfg.DataDir = t.TempDir()
	cfg.CollectorAddr, cfg.DashboardAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Demo = true
	if set != nil {
		set(&cfg)
	}
	n := New(cfg, nil)
	if err := n.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	demo, err := SeedDemo(context.Background(), n.Accounts)
	if err != nil {
		t.Fatal(err)
	}
	return n, demo
}

// iPhoneSafari is the User-Agent of the demo tests' taps.
const iPhoneSafari = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1"

// demoClient follows no redirect.
var demoClient = &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// tapDemo taps the demo link from an iPhone, with query added to its URL.
func tapDemo(t *testing.T, n *Node, query string) {
	t.Helper()
	req := mustRequest(t, n.CollectorURL+"/l/"+DemoLinkSlug+query)
	req.Header.Set("User-Agent", iPhoneSafari)
	resp, err := demoClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// postDemoEvent posts event name of the demo app's installation session,
// whose IDFA is idfa, in the Tapstream form, and wants it accepted.
func postDemoEvent(t *testing.T, n *Node, name, session, idfa string) {
	t.Helper()
	form := url.Values{"secret": {DemoSDKSecret}, "uuid": {session}, "platform": {"iOS"}, "hardware-ios-idfa": {idfa},
		"created-ms": {strconv.FormatInt(time.Now().UnixMilli(), 10)}}
	resp, err := demoClient.PostForm(n.CollectorURL+"/"+DemoAccount+"/event/"+name+"/", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %d", name, resp.StatusCode)
	}
}

func mustRequest(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// TestTimelineAllInOne follows a tap on the demo link, with a deep link,
// and the install it led to through target "all" on the embedded bus and
// raw store, to the Tapstream SDK's blocking timeline summary: the
// collector reads the matcher's raw store in process.
func TestTimelineAllInOne(t *testing.T) {
	ctx := context.Background()
	n, demo := openDemo(t, nil)
	if n.Collector.RawStore == nil || n.Collector.RawStore != n.Raw {
		t.Fatal("the all-in-one's collector does not read the matcher's raw store")
	}
	demo.Link.DeepLink = "demoapp://welcome"
	if err := n.Accounts.UpdateLink(ctx, demo.Link); err != nil {
		t.Fatal(err)
	}
	client := demoClient
	const idfa = "1E2D3C4B-5A69-4788-9766-554433221100"
	tapDemo(t, n, "?idfa="+idfa)
	const session = "2B4D6F80-1A3C-4E5F-8091-A2B3C4D5E6F7"
	postDemoEvent(t, n, "ios-demo-install", session, idfa)
	summary := n.CollectorURL + "/v1/timelines/summary?" + url.Values{"secret": {DemoSDKSecret}, "event_session": {session}, "blocking": {"true"}}.Encode()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(summary)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			LatestDeeplink string   `json:"latest_deeplink"`
			Campaigns      []string `json:"campaigns"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err != nil {
			t.Fatalf("summary: %d, %v", resp.StatusCode, err)
		}
		if body.LatestDeeplink == "demoapp://welcome" && len(body.Campaigns) == 1 && body.Campaigns[0] == DemoLinkSlug {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("summary after 30 s: %+v, want the demo link's deep link", body)
		}
	}

	// The dashboard's listener exports the tap and the install from the
	// matcher's raw store, without the advertising id they carried.
	_, apiToken, err := n.Accounts.CreateAPIToken(ctx, demo.Account.ID, "export")
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"hits", "events"} {
		status, body := exportGet(t, n, apiToken, demo.App.ID, kind)
		if status != http.StatusOK || strings.Count(body, "\n") != 2 || !strings.Contains(body, `"complete":true,"rows":1}`) ||
			strings.Contains(strings.ToLower(body), strings.ToLower(idfa)) {
			t.Errorf("%s export of the all-in-one: %d %s, want one row and the trailer, without the IDFA", kind, status, body)
		}
	}
	// The dashboard's own routes still answer on the same listener.
	req := mustRequest(t, fmt.Sprintf("%s/api/v1/apps/%d/daily", n.DashboardURL, demo.App.ID))
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the dashboard's daily report behind the export: %d", resp.StatusCode)
	}
}

// TestCollectThenMatch: a collector without Kafka records a tap on the
// embedded bus in its data directory while nothing matches it; `tapline
// run` (target all) on that directory later drains it into the facts.
func TestCollectThenMatch(t *testing.T) {
	ctx := context.Background()
	dbURL, dataDir := pgtest.URL(t), t.TempDir()
	token := strings.Repeat("t", 32)
	open := func(target string) *Node {
		t.Helper()
		cfg := NewConfig()
		cfg.Target, cfg.DatabaseURL, cfg.DataDir, cfg.Demo = target, dbURL, dataDir, true
		cfg.CollectorAddr, cfg.DashboardAddr = "127.0.0.1:0", "127.0.0.1:0"
		cfg.AdminToken, cfg.TrustedProxy = token, "127.0.0.1"
		n := New(cfg, nil)
		if err := n.Open(ctx); err != nil {
			t.Fatalf("open %s: %v", target, err)
		}
		return n
	}
	coll := open(TargetCollector)
	if coll.Matcher != nil || coll.Dashboard != nil || coll.Bus == nil {
		t.Fatal("a collector node runs other components, or no bus")
	}
	client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodGet, coll.CollectorURL+"/l/"+DemoLinkSlug, nil)
	req.Header.Set("User-Agent", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1")
	req.Header.Set("X-Forwarded-For", "198.51.100.24")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("tap: %d, want 302", resp.StatusCode)
	}
	if err := coll.Close(); err != nil { // drains the queued hit to the bus
		t.Fatalf("close collector: %v", err)
	}

	all := open(TargetAll)
	t.Cleanup(func() {
		if err := all.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	waitDay(t, all, token, "count of the collected tap", func(d tapline.DailyStats) bool { return d.Hits == 1 })
}
