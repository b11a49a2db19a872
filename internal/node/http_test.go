package node

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"tapline"
	"tapline/internal/faults"
	"tapline/matcher"
	"tapline/pebble"
	"tapline/postgres"
	"tapline/postgres/pgtest"
)

// Short timeouts the tests configure.
const (
	testHeaderTimeout = 200 * time.Millisecond
	testReadTimeout   = 300 * time.Millisecond
	testIdleTimeout   = 300 * time.Millisecond
)

// TestListenerTimeouts configures short timeouts on an all-in-one node and
// checks, on each of its listeners (collector, dashboard, debug), that a
// client sending its headers a byte at a time is cut off after the read
// header timeout, one sending its body slowly after the read timeout, and
// an idle keep-alive connection is closed after the idle timeout.
func TestListenerTimeouts(t *testing.T) {
	n, _ := openDemo(t, func(c *Config) {
		c.HTTPReadHeaderTimeout, c.HTTPReadTimeout, c.HTTPIdleTimeout = testHeaderTimeout, testReadTimeout, testIdleTimeout
		c.DebugAddr = "127.0.0.1:0"
	})
	// post: a route that reads a body ("" for none)
	listeners := []struct{ name, base, get, post string }{
		{"collector", n.CollectorURL, "/healthz", "/" + DemoAccount + "/event/slow/"},
		{"dashboard", n.DashboardURL, "/livez", "/login"},
		{"debug", n.DebugURL, "/debug/pprof/", ""},
	}
	about := func(t *testing.T, what string, got, want time.Duration, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		// The server starts its clock before the client can (at accept,
		// or when it has written its answer), so on a loaded machine the
		// client sees less than the timeout; never far more.
		if got < want/2 || got > want+time.Second {
			t.Errorf("%s: the server hung up after %s, want about %s", what, got, want)
		}
	}
	t.Run("clients", func(t *testing.T) { playFaults(t, listeners, about) })

	// The event whose body was cut off was not taken. (Sent whole, it is:
	// TestSlowFormIsAnEvent.)
	ends, err := n.Bus.(tapline.EndOffsetReader).EndOffsets(t.Context(), n.Config.EventsTopic)
	if err != nil {
		t.Fatal(err)
	}
	var events int64
	for _, e := range ends {
		events += e
	}
	if events != 0 {
		t.Errorf("the bus holds %d events after the slow bodies, want none", events)
	}
}

// slowForm is a body the collector's event route and the dashboard's login
// would take (an event of the demo app; a login of nobody), padded so that
// sent a byte at a time it takes far longer than the read timeout.
func slowForm() []byte {
	return []byte(url.Values{"secret": {DemoSDKSecret}, "uuid": {"5B7C1C2E-0F4A-4D6B-9B8E-1A2B3C4D5E6F"}, "platform": {"iOS"},
		"created-ms": {strconv.FormatInt(time.Now().UnixMilli(), 10)}, "login": {"nobody"}, "password": {"x"},
		"pad": {strings.Repeat("p", 2000)}}.Encode())
}

// playFaults plays the misbehaving clients against each listener.
func playFaults(t *testing.T, listeners []struct{ name, base, get, post string }, about func(*testing.T, string, time.Duration, time.Duration, error)) {
	for _, l := range listeners {
		addr := strings.TrimPrefix(l.base, "http://")
		t.Run(l.name+"/slow headers", func(t *testing.T) {
			t.Parallel()
			d, err := faults.SlowHeaders(t.Context(), addr, l.get, 20*time.Millisecond)
			about(t, "slow headers", d, testHeaderTimeout, err)
		})
		if l.post != "" {
			t.Run(l.name+"/slow body", func(t *testing.T) {
				t.Parallel()
				d, err := faults.SlowBody(t.Context(), addr, l.post, slowForm(), 20*time.Millisecond)
				about(t, "slow body", d, testReadTimeout, err)
			})
		}
		t.Run(l.name+"/idle", func(t *testing.T) {
			t.Parallel()
			d, err := faults.Idle(t.Context(), addr, l.get)
			about(t, "idle", d, testIdleTimeout, err)
		})
	}
}

// healthReport is the JSON of /healthz.
type healthReport struct {
	Status string `json:"status"`
	Checks []struct {
		Name  string `json:"name"`
		OK    bool   `json:"ok"`
		Value string `json:"value"`
		Error string `json:"error"`
	} `json:"checks"`
}

func getHealth(t *testing.T, u string) (int, healthReport) {
	t.Helper()
	res, err := demoClient.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var h healthReport
	if err := json.NewDecoder(res.Body).Decode(&h); err != nil {
		t.Fatalf("GET %s: %d, body not JSON: %v", u, res.StatusCode, err)
	}
	return res.StatusCode, h
}

func (h healthReport) check(name string) (ok bool, value, errMsg string, found bool) {
	for _, c := range h.Checks {
		if c.Name == name {
			return c.OK, c.Value, c.Error, true
		}
	}
	return false, "", "", false
}

// TestMatcherHealthz runs a matcher-only node on Kafka (kfake) and checks
// that its /healthz passes the PostgreSQL, bus and lag checks, that its
// /metrics has the lag gauge of every partition, and that once Kafka is
// gone /healthz answers 503 naming the bus while /livez still answers 200.
func TestMatcherHealthz(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	stopKafka := sync.OnceFunc(cluster.Close)
	t.Cleanup(stopKafka)
	cfg := NewConfig()
	cfg.Target = TargetMatcher
	cfg.DatabaseURL = pgtest.URL(t)
	cfg.DataDir = t.TempDir()
	cfg.MetricsAddr = "127.0.0.1:0"
	cfg.KafkaBrokers = strings.Join(cluster.ListenAddrs(), ",")
	cfg.Partitions = 2
	n := New(cfg, nil)
	if err := n.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })

	code, h := getHealth(t, n.MetricsURL+"/healthz")
	if code != http.StatusOK || h.Status != "ok" || len(h.Checks) != 3 {
		t.Fatalf("healthz: %d %+v, want 200 ok with 3 checks", code, h)
	}
	for _, name := range []string{"postgres", "bus", "lag"} {
		if ok, v, e, found := h.check(name); !found || !ok || v == "" {
			t.Errorf("check %s: found %v ok %v value %q error %q; want passed with a value", name, found, ok, v, e)
		}
	}
	res, err := demoClient.Get(n.MetricsURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, topic := range []string{cfg.HitsTopic, cfg.EventsTopic} {
		for p := range 2 {
			want := `tapline_matcher_consumer_lag_messages{partition="` + strconv.Itoa(p) + `",topic="` + topic + `"} 0`
			if !strings.Contains(string(body), want+"\n") {
				t.Errorf("metrics lack %s", want)
			}
		}
	}

	stopKafka()
	time.Sleep(1100 * time.Millisecond) // past the cached report
	code, h = getHealth(t, n.MetricsURL+"/healthz")
	if ok, _, e, _ := h.check("bus"); code != http.StatusServiceUnavailable || h.Status != "failing" || ok || e == "" {
		t.Errorf("healthz with Kafka gone: %d %+v, want 503 with the bus check failed", code, h)
	}
	if ok, _, _, _ := h.check("postgres"); !ok {
		t.Errorf("healthz with Kafka gone: the postgres check failed too: %+v", h)
	}
	if res, err := demoClient.Get(n.MetricsURL + "/livez"); err != nil || res.StatusCode != http.StatusOK {
		t.Errorf("livez with Kafka gone: %v %v, want 200", res, err)
	}
}

// TestAllInOneHealthz checks that the all-in-one's dashboard /healthz runs
// the matcher's checks on the embedded bus, and fails once the bus is
// closed; and that the export, in front of the dashboard on its listener,
// is counted in the dashboard's metrics.
func TestAllInOneHealthz(t *testing.T) {
	n, demo := openDemo(t, nil)
	code, h := getHealth(t, n.DashboardURL+"/healthz")
	if code != http.StatusOK || len(h.Checks) != 3 {
		t.Fatalf("healthz: %d %+v, want 200 with the postgres, bus and lag checks", code, h)
	}

	_, secret, err := n.Accounts.CreateAPIToken(context.Background(), demo.Account.ID, "export")
	if err != nil {
		t.Fatal(err)
	}
	req := mustRequest(t, n.DashboardURL+"/api/v1/apps/"+strconv.FormatInt(demo.App.ID, 10)+"/export/conversions")
	req.Header.Set("Authorization", "Bearer "+secret)
	res, err := demoClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("export: %d, want 200", res.StatusCode)
	}
	res, err = demoClient.Get(n.DashboardURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if want := `tapline_dashboard_requests_total{code="200",route="/api/v1/apps/{id}/export/{kind}"} 1`; !strings.Contains(string(body), want+"\n") {
		t.Errorf("the dashboard's metrics lack %s", want)
	}
	if err := n.Bus.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	code, h = getHealth(t, n.DashboardURL+"/healthz")
	if ok, _, e, _ := h.check("bus"); code != http.StatusServiceUnavailable || ok || !strings.Contains(e, "closed") {
		t.Errorf("healthz with the bus closed: %d %+v, want 503 with the bus check saying it is closed", code, h)
	}
}

// TestLagCheck publishes to an embedded bus that no matcher consumes and
// checks the lag check against bounds below, at and above the backlog.
func TestLagCheck(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	bus := pebble.NewBus(t.TempDir())
	bus.NumPartitions = 3
	if err := bus.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bus.Close() })
	const published = 25
	for i := range published {
		if err := bus.Publish(ctx, tapline.Message{Topic: tapline.TopicEvents, Key: []byte(strconv.Itoa(i)), Value: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := NewConfig()
	n := &Node{Config: cfg, Bus: bus, DB: db}
	n.Matcher = matcher.New(MatcherConfig(&cfg), bus, nil, postgres.NewFactStore(db), nil)
	for _, tt := range []struct {
		name  string
		bound int64
		fails bool
	}{
		{name: "below", bound: published - 1, fails: true},
		{name: "at", bound: published},
		{name: "above", bound: published + 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n.Config.HealthMaxLag = tt.bound
			v, err := n.lagCheck(true).Run(ctx)
			if v != strconv.Itoa(published)+" messages" || (err != nil) != tt.fails {
				t.Errorf("bound %d: %q, %v; want %d messages, failing %v", tt.bound, v, err, published, tt.fails)
			}
			if err != nil && !strings.Contains(tapline.ErrorMessage(err), "-health-max-lag") {
				t.Errorf("the failure does not name the flag: %v", err)
			}
		})
	}
}

// TestSlowFormIsAnEvent checks that the collector takes slowForm as an
// event when it is sent at once, so that TestListenerTimeouts finding no
// event means the read timeout cut it off.
func TestSlowFormIsAnEvent(t *testing.T) {
	n, _ := openDemo(t, nil)
	res, err := demoClient.Post(n.CollectorURL+"/"+DemoAccount+"/event/slow/", "application/x-www-form-urlencoded", strings.NewReader(string(slowForm())))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("the slow form sent at once: %d, want 200", res.StatusCode)
	}
	ends, err := n.Bus.(tapline.EndOffsetReader).EndOffsets(t.Context(), n.Config.EventsTopic)
	if err != nil {
		t.Fatal(err)
	}
	var events int64
	for _, e := range ends {
		events += e
	}
	if events != 1 {
		t.Errorf("the bus holds %d events, want 1", events)
	}
}

// TestPrivateMetrics runs the all-in-one and a collector-only node with
// -metrics-addr and checks that /metrics has left the public listeners
// (404 on the collector's and the dashboard's) for the operator's, which
// serves every component's metrics, the process's readiness and /livez,
// while the public /healthz probes stay where load balancers look.
func TestPrivateMetrics(t *testing.T) {
	get := func(t *testing.T, url string) (int, string) {
		t.Helper()
		res, err := demoClient.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body)
	}
	t.Run("all-in-one", func(t *testing.T) {
		n, _ := openDemo(t, func(c *Config) { c.MetricsAddr = "127.0.0.1:0" })
		if n.MetricsURL == "" {
			t.Fatal("no operator listener")
		}
		tapDemo(t, n, "")
		if code, _ := get(t, n.DashboardURL+"/login"); code != http.StatusOK {
			t.Fatalf("dashboard login page: %d", code)
		}
		for _, base := range []string{n.CollectorURL, n.DashboardURL} {
			if code, _ := get(t, base+"/metrics"); code != http.StatusNotFound {
				t.Errorf("GET %s/metrics: %d, want 404 with -metrics-addr set", base, code)
			}
			if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
				t.Errorf("GET %s/healthz: %d, want 200", base, code)
			}
		}
		code, body := get(t, n.MetricsURL+"/metrics")
		if code != http.StatusOK {
			t.Fatalf("operator /metrics: %d", code)
		}
		for _, want := range []string{
			`tapline_collector_requests_total{`,
			`tapline_dashboard_requests_total{code="200",route="/login"} 1`,
			`tapline_matcher_consumer_lag_messages{`,
			`go_goroutines `,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("operator /metrics lacks %s", want)
			}
		}
		if strings.Contains(body, `route="/metrics"`) {
			t.Error("a scrape of the operator's listener was counted as a dashboard request")
		}
		code, h := getHealth(t, n.MetricsURL+"/healthz")
		if code != http.StatusOK || len(h.Checks) != 3 {
			t.Errorf("operator /healthz: %d %+v, want 200 with the postgres, bus and lag checks", code, h)
		}
		if code, _ := get(t, n.MetricsURL+"/livez"); code != http.StatusOK {
			t.Errorf("operator /livez: %d, want 200", code)
		}
	})
	t.Run("collector", func(t *testing.T) {
		n, _ := openDemo(t, func(c *Config) { c.Target, c.MetricsAddr = TargetCollector, "127.0.0.1:0" })
		tapDemo(t, n, "")
		if code, _ := get(t, n.CollectorURL+"/metrics"); code != http.StatusNotFound {
			t.Errorf("collector /metrics: %d, want 404", code)
		}
		code, body := get(t, n.MetricsURL+"/metrics")
		if code != http.StatusOK || !strings.Contains(body, `tapline_collector_requests_total{`) {
			t.Errorf("operator /metrics: %d, want 200 with the collector's metrics", code)
		}
		if code, body := get(t, n.MetricsURL+"/healthz"); code != http.StatusOK || body != "ok\n" {
			t.Errorf("operator /healthz: %d %q, want the collector's 200 ok", code, body)
		}
	})
	t.Run("without", func(t *testing.T) {
		n, _ := openDemo(t, nil)
		if n.MetricsURL != "" {
			t.Errorf("an all-in-one without -metrics-addr has an operator listener at %s", n.MetricsURL)
		}
		if code, body := get(t, n.CollectorURL+"/metrics"); code != http.StatusOK || !strings.Contains(body, "tapline_collector_") {
			t.Errorf("collector /metrics without -metrics-addr: %d, want 200 with its metrics", code)
		}
	})
}

// TestLagVerdict checks the lag check's two bounds: the group's messages
// and the wait of this matcher's oldest fetched message, each failing
// only past its flag, and saying which flag.
func TestLagVerdict(t *testing.T) {
	at := tapline.Partition{Topic: "events", Partition: 3}
	for _, tt := range []struct {
		name   string
		total  int64
		behind time.Duration
		value  string
		flag   string // of the failure; "" passes
	}{
		{name: "caught up", total: 0, value: "0 messages"},
		{name: "behind within", total: 10, behind: 90 * time.Second, value: "10 messages, 1m30s behind"},
		{name: "behind at the bound", total: 10, behind: 10 * time.Minute, value: "10 messages, 10m0s behind"},
		{name: "behind past", total: 10, behind: 10*time.Minute + time.Second, value: "10 messages, 10m1s behind", flag: "-health-max-behind"},
		{name: "lag past", total: 101, behind: time.Second, value: "101 messages, 1s behind", flag: "-health-max-lag"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v, err := lagVerdict(tt.total, tt.behind, at, 100, 10*time.Minute)
			if v != tt.value {
				t.Errorf("value %q, want %q", v, tt.value)
			}
			switch {
			case tt.flag == "" && err != nil:
				t.Errorf("failed: %v", err)
			case tt.flag != "" && (err == nil || !strings.Contains(tapline.ErrorMessage(err), tt.flag)):
				t.Errorf("error %v, want a failure naming %s", err, tt.flag)
			case tt.flag == "-health-max-behind" && !strings.Contains(tapline.ErrorMessage(err), "events partition 3"):
				t.Errorf("the failure does not name the partition: %v", err)
			}
		})
	}
}
