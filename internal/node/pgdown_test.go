package node

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kfake"

	"tapline"
	"tapline/postgres/pgtest"
)

// pgGate stands between tapline and the test's PostgreSQL on a port of its
// own: while down nothing listens on that port (connections are refused,
// as from a stopped server) and the connections it carried are cut; while
// up it forwards every connection to the real server.
type pgGate struct {
	t      *testing.T
	addr   string // the gate's 127.0.0.1:port
	target string // the server's host:port
	url    string // the database URL through the gate

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// newPGGate returns a gate, down, in front of the server of dbURL.
func newPGGate(t *testing.T, dbURL string) *pgGate {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &pgGate{t: t, addr: ln.Addr().String(), target: u.Host, conns: map[net.Conn]struct{}{}}
	ln.Close() // the port stays ours in practice: nothing else here binds port 0 addresses it was not given
	u.Host = g.addr
	g.url = u.String()
	t.Cleanup(g.down)
	return g
}

// up starts forwarding.
func (g *pgGate) up() {
	g.t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ln != nil {
		return
	}
	var ln net.Listener
	var err error
	for range 50 { // the port was just closed by down; the kernel may still hold it briefly
		if ln, err = net.Listen("tcp", g.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		g.t.Fatalf("gate up: %v", err)
	}
	g.ln = ln
	g.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", g.target)
			if err != nil {
				c.Close()
				continue
			}
			g.mu.Lock()
			g.conns[c], g.conns[s] = struct{}{}, struct{}{}
			g.mu.Unlock()
			pipe := func(dst, src net.Conn) {
				_, _ = io.Copy(dst, src)
				dst.Close()
				src.Close()
			}
			go pipe(s, c)
			go pipe(c, s)
		}
	})
}

// down stops listening and cuts every connection it carried.
func (g *pgGate) down() {
	g.mu.Lock()
	if g.ln != nil {
		g.ln.Close()
		g.ln = nil
	}
	for c := range g.conns {
		c.Close()
	}
	clear(g.conns)
	g.mu.Unlock()
	g.wg.Wait()
}

// openOn opens an all-in-one node on dbURL and dataDir with the demo seeded
// (once the database answers); the caller closes it.
func openOn(t *testing.T, dbURL, dataDir, token string) *Node {
	t.Helper()
	cfg := NewConfig()
	cfg.DatabaseURL, cfg.DataDir, cfg.Demo = dbURL, dataDir, true
	cfg.CollectorAddr, cfg.DashboardAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.AdminToken = token
	n := New(cfg, nil)
	if err := n.Open(context.Background()); err != nil {
		t.Fatalf("open: %v", err)
	}
	return n
}

// sdkTraffic is what a phone sends: a tap on the demo link (wanting the
// App Store redirect), a Tapstream install and a JSON batch event, each
// of a session of its own (run names it).
func sdkTraffic(t *testing.T, n *Node, run string) {
	t.Helper()
	req := mustRequest(t, n.CollectorURL+"/l/"+DemoLinkSlug)
	req.Header.Set("User-Agent", iPhoneSafari)
	resp, err := demoClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || !strings.Contains(resp.Header.Get("Location"), "apps.apple.com") {
		t.Fatalf("%s: tap answered %d to %q, want 302 to the App Store", run, resp.StatusCode, resp.Header.Get("Location"))
	}
	session := strings.ToUpper(uuid.NewSHA1(uuid.NameSpaceOID, []byte(run)).String())
	form := url.Values{"secret": {DemoSDKSecret}, "uuid": {session}, "platform": {"iOS"},
		"created-ms": {strconv.FormatInt(time.Now().UnixMilli(), 10)}}
	resp, err = demoClient.PostForm(n.CollectorURL+"/"+DemoAccount+"/event/ios-demo-install/", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: Tapstream install answered %d, want 200", run, resp.StatusCode)
	}
	body := `{"events":[{"id":"` + run + `-level","name":"level_up","kind":"custom","time":"` + time.Now().UTC().Format(time.RFC3339) +
		`","install_id":"` + session + `","device":{"platform":"ios","os_version":"17.4","model":"iPhone15,2"}}]}`
	req, _ = http.NewRequest(http.MethodPost, n.CollectorURL+"/v1/events", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+DemoSDKKey)
	resp, err = demoClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"accepted":1`) {
		t.Fatalf("%s: batch answered %d %s, want 200 with the event accepted", run, resp.StatusCode, b)
	}
}

// today reads the demo app's totals of today from the dashboard's API.
func today(t *testing.T, n *Node, token string) (tapline.DailyStats, int) {
	t.Helper()
	demo, err := SeedDemo(context.Background(), n.Accounts)
	if err != nil {
		t.Fatal(err)
	}
	day := time.Now().UTC().Format("2006-01-02")
	req := mustRequest(t, fmt.Sprintf("%s/api/v1/apps/%d/daily?from=%s&to=%s", n.DashboardURL, demo.App.ID, day, day))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	resp, err := demoClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Days []tapline.DailyStats `json:"days"`
	}
	if resp.StatusCode != http.StatusOK {
		return tapline.DailyStats{}, resp.StatusCode
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if len(body.Days) != 1 {
		return tapline.DailyStats{}, resp.StatusCode
	}
	return body.Days[0], resp.StatusCode
}

// waitCounts waits up to 15 s for today's totals to reach want, then
// checks, after the matcher has had time to count anything twice, that
// they stay there.
func waitCounts(t *testing.T, n *Node, token string, want tapline.DailyStats) {
	t.Helper()
	same := func(d tapline.DailyStats) bool {
		return d.Hits == want.Hits && d.Installs == want.Installs && d.Events == want.Events
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		d, _ := today(t, n, token)
		if same(d) {
			break
		}
		if time.Now().After(deadline) || d.Hits > want.Hits || d.Installs > want.Installs || d.Events > want.Events {
			t.Fatalf("today = hits %d installs %d events %d, want %d %d %d", d.Hits, d.Installs, d.Events, want.Hits, want.Installs, want.Events)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2500 * time.Millisecond) // two flush intervals
	if d, _ := today(t, n, token); !same(d) {
		t.Fatalf("today = hits %d installs %d events %d after settling, want %d %d %d", d.Hits, d.Installs, d.Events, want.Hits, want.Installs, want.Events)
	}
}

// TestStartWhilePostgresDown starts `tapline run` (target all) on a data
// directory whose collector saw the demo link and app in an earlier run,
// while PostgreSQL refuses connections: the node starts, the collector
// redirects and takes SDK events from its snapshot, a slug and a key it
// never saw answer 503 with Retry-After, the dashboard answers 503, and
// once PostgreSQL answers the matcher counts every accepted request
// exactly once and the dashboard works without a restart.
func TestStartWhilePostgresDown(t *testing.T) {
	dataDir, token := t.TempDir(), strings.Repeat("t", 32)
	gate := newPGGate(t, pgtest.URL(t))
	gate.up()

	first := openOn(t, gate.url, dataDir, token)
	sdkTraffic(t, first, "run1")
	var once tapline.DailyStats
	deadline := time.Now().Add(15 * time.Second)
	for once.Hits == 0 || once.Installs == 0 || once.Events == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("first run not counted: %+v", once)
		}
		time.Sleep(100 * time.Millisecond)
		once, _ = today(t, first, token)
	}
	if once.Hits != 1 || once.Installs != 1 {
		t.Fatalf("first run = %+v, want 1 hit and 1 install", once)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("close first run: %v", err)
	}

	gate.down()
	n := openOn(t, gate.url, dataDir, token)
	defer func() {
		if err := n.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	select {
	case <-n.DB.Ready():
		t.Fatal("the database is ready behind a closed port")
	default:
	}
	sdkTraffic(t, n, "run2")

	// Never seen: no redirect can be made up, and the SDKs retry a 503.
	resp, err := demoClient.Do(mustRequest(t, n.CollectorURL+"/l/never-seen"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("unknown slug while the database is down: %d Retry-After %q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	req, _ := http.NewRequest(http.MethodPost, n.CollectorURL+"/v1/events", strings.NewReader(`{"events":[]}`))
	req.Header.Set("Authorization", "Bearer never-seen-key-0123456789")
	resp, err = demoClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("unknown SDK key while the database is down: %d Retry-After %q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	resp, err = demoClient.PostForm(n.CollectorURL+"/"+DemoAccount+"/event/ios-demo-install/", url.Values{"secret": {"never-seen-secret-0123456789"}, "uuid": {"x"}, "platform": {"iOS"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("unknown SDK secret while the database is down: %d Retry-After %q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// The dashboard says why it cannot answer.
	req = mustRequest(t, n.DashboardURL+"/api/v1/apps/1/daily")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err = demoClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), "database is unavailable") {
		t.Errorf("dashboard while the database is down: %d %s, want 503 saying the database is unavailable", resp.StatusCode, b)
	}

	time.Sleep(500 * time.Millisecond) // a few failed attempts
	gate.up()
	select {
	case <-n.DB.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("the database is not ready 10 s after it came back")
	}
	waitCounts(t, n, token, tapline.DailyStats{Hits: 2 * once.Hits, Installs: 2 * once.Installs, Events: 2 * once.Events})
}

// TestSnapshotRefreshedWhenPostgresUp: a link edited since the snapshot
// was written redirects to its new destination once the database answers,
// not to the snapshot's.
func TestSnapshotRefreshedWhenPostgresUp(t *testing.T) {
	ctx := context.Background()
	dataDir, token := t.TempDir(), strings.Repeat("t", 32)
	dbURL := pgtest.URL(t)
	first := openOn(t, dbURL, dataDir, token)
	tap := func(n *Node) (int, string) {
		req := mustRequest(t, n.CollectorURL+"/l/"+DemoLinkSlug)
		req.Header.Set("User-Agent", iPhoneSafari)
		resp, err := demoClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Location")
	}
	if status, loc := tap(first); status != http.StatusFound || !strings.Contains(loc, "apps.apple.com") {
		t.Fatalf("tap: %d %q", status, loc)
	}
	demo, err := SeedDemo(ctx, first.Accounts)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	const moved = "https://apps.apple.com/app/id111111111"
	demo.Link.IOSURL = moved
	second := openOn(t, dbURL, dataDir, token)
	defer second.Close()
	if err := second.Accounts.UpdateLink(ctx, demo.Link); err != nil {
		t.Fatal(err)
	}
	if status, loc := tap(second); status != http.StatusFound || loc != moved {
		t.Fatalf("tap after the edit: %d %q, want 302 to %s", status, loc, moved)
	}
}

// TestMatcherRidesOutPostgresOutage stops PostgreSQL (its port refused,
// its connections cut) for a few seconds while the all-in-one runs and
// takes traffic: the collector keeps serving from its cache, the matcher
// retries its flushes, and everything is counted exactly once after.
func TestMatcherRidesOutPostgresOutage(t *testing.T) {
	dataDir, token := t.TempDir(), strings.Repeat("t", 32)
	gate := newPGGate(t, pgtest.URL(t))
	gate.up()
	n := openOn(t, gate.url, dataDir, token)
	defer n.Close()
	sdkTraffic(t, n, "before")
	var once tapline.DailyStats
	deadline := time.Now().Add(15 * time.Second)
	for once.Hits == 0 || once.Installs == 0 || once.Events == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("not counted: %+v", once)
		}
		time.Sleep(100 * time.Millisecond)
		once, _ = today(t, n, token)
	}
	gate.down()
	sdkTraffic(t, n, "during")
	time.Sleep(3 * time.Second) // flushes fail meanwhile
	gate.up()
	waitCounts(t, n, token, tapline.DailyStats{Hits: 2 * once.Hits, Installs: 2 * once.Installs, Events: 2 * once.Events})
	if got := counter(t, n, "tapline_matcher_flush_errors_total"); got == 0 {
		t.Errorf("tapline_matcher_flush_errors_total = 0: no flush ran into the outage, so the test proves nothing")
	}
}

// TestOpenFailsOnPermanentDatabaseErrors: a database that does not exist
// and a schema newer than the binary are no outage: Open fails at once.
func TestOpenFailsOnPermanentDatabaseErrors(t *testing.T) {
	ctx := context.Background()
	dbURL := pgtest.URL(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	missing := *u
	missing.Path = "/no_such_database_here"

	newer := pgtest.URL(t)
	conn, err := pgx.Connect(ctx, newer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `UPDATE schema_migrations SET version = 99999`); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)

	for _, tc := range []struct{ name, url, want string }{
		{"missing database", missing.String(), "no_such_database_here"},
		{"newer schema", newer, "newer than this binary"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := NewConfig()
			cfg.DatabaseURL, cfg.DataDir = tc.url, t.TempDir()
			cfg.CollectorAddr, cfg.DashboardAddr = "127.0.0.1:0", "127.0.0.1:0"
			cfg.Migrate = false
			n := New(cfg, nil)
			start := time.Now()
			err := n.Open(ctx)
			if err == nil {
				n.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) || time.Since(start) > 5*time.Second {
				t.Fatalf("Open after %s: %v, want an error naming %q at once", time.Since(start), err, tc.want)
			}
		})
	}
}

// TestScaleOutMatcherStartsWhilePostgresDown starts a separate matcher
// (kfake) while PostgreSQL refuses connections: it opens, does not consume,
// and once PostgreSQL answers it joins the group and counts the tap and
// install the collector took meanwhile, once.
func TestScaleOutMatcherStartsWhilePostgresDown(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	token := strings.Repeat("t", 32)
	dbURL := pgtest.URL(t)
	gate := newPGGate(t, dbURL)
	open := func(target, url string) *Node {
		t.Helper()
		cfg := NewConfig()
		cfg.Target, cfg.DatabaseURL, cfg.DataDir = target, url, t.TempDir()
		cfg.CollectorAddr, cfg.DashboardAddr, cfg.MetricsAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		cfg.KafkaBrokers = strings.Join(cluster.ListenAddrs(), ",")
		cfg.AdminToken, cfg.Demo = token, target == TargetCollector
		n := New(cfg, nil)
		if err := n.Open(context.Background()); err != nil {
			t.Fatalf("open %s: %v", target, err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	coll := open(TargetCollector, dbURL) // seeds the demo
	match := open(TargetMatcher, gate.url)
	if match.Matcher.Group != nil {
		t.Fatal("the matcher joined its group while PostgreSQL was down")
	}
	dash := open(TargetDashboard, dbURL)
	tapAndInstall(t, coll, "31313131-4242-4353-8464-757575757575", "C0000000-0000-4000-8000-000000000001", 0)
	time.Sleep(time.Second)
	if d, _ := today(t, dash, token); d.Hits != 0 {
		t.Fatalf("counted before the matcher could reach PostgreSQL: %+v", d)
	}
	gate.up()
	waitCounts(t, dash, token, tapline.DailyStats{Hits: 1, Installs: 1, Events: eventsOfOneInstall(t, dash, token)})
	if d, _ := today(t, dash, token); d.Conversions != 1 {
		t.Fatalf("conversions = %d, want 1", d.Conversions)
	}
}

// TestFailedWhenPostgresReturnsUnusable starts a node while PostgreSQL is
// down; when it comes back with a schema newer than this binary, the
// components waiting for it cannot start, and Failed says so (the mains
// exit non-zero on it) instead of the process serving without a matcher.
func TestFailedWhenPostgresReturnsUnusable(t *testing.T) {
	ctx := context.Background()
	newer := pgtest.URL(t)
	conn, err := pgx.Connect(ctx, newer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `UPDATE schema_migrations SET version = 99999`); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	gate := newPGGate(t, newer)
	n := openOn(t, gate.url, t.TempDir(), "failed-token-0123456789abcdef0123456789")
	defer n.Close()
	select {
	case err := <-n.Failed():
		t.Fatalf("failed while the database was down: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	gate.up()
	select {
	case err := <-n.Failed():
		if !strings.Contains(err.Error(), "newer than this binary") {
			t.Fatalf("Failed: %v, want the schema named", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("nothing on Failed 30 s after the database came back with a newer schema")
	}
}
