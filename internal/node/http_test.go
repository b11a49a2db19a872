package node

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"tapline"
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
	listeners := []struct {
		name, base, get, post string // post: a route that reads a body ("" for none)
	}{
		{"collector", n.CollectorURL, "/healthz", "/" + DemoAccount + "/event/slow/"},
		{"dashboard", n.DashboardURL, "/livez", "/login"},
		{"debug", n.DebugURL, "/debug/pprof/", ""},
	}
	for _, l := range listeners {
		addr := strings.TrimPrefix(l.base, "http://")
		t.Run(l.name+"/slow headers", func(t *testing.T) {
			t.Parallel()
			conn := dial(t, addr)
			closed := closedAfter(conn)
			start := time.Now()
			head := "GET " + l.get + " HTTP/1.1\r\nHost: tapline\r\nX-Slow: " + strings.Repeat("s", 60) + "\r\n\r\n"
			sent := 0
		loop:
			for ; sent < len(head); sent++ {
				if _, err := conn.Write([]byte{head[sent]}); err != nil {
					break
				}
				select {
				case <-closed.done:
					break loop
				case <-time.After(50 * time.Millisecond):
				}
			}
			took := closed.wait(t, 3*time.Second)
			if sent >= len(head) {
				t.Fatalf("the whole header (%d bytes over %s) was sent before the server hung up", len(head), time.Since(start))
			}
			if took < testHeaderTimeout-20*time.Millisecond || took > testHeaderTimeout+time.Second {
				t.Errorf("the server hung up after %s, want about the read header timeout %s", took, testHeaderTimeout)
			}
		})
		if l.post != "" {
			t.Run(l.name+"/slow body", func(t *testing.T) {
				t.Parallel()
				conn := dial(t, addr)
				closed := closedAfter(conn)
				const length = 4000
				head := "POST " + l.post + " HTTP/1.1\r\nHost: tapline\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: " + strconv.Itoa(length) + "\r\n\r\n"
				if _, err := io.WriteString(conn, head); err != nil {
					t.Fatal(err)
				}
				sent := 0
			loop:
				for ; sent < length; sent++ {
					if _, err := conn.Write([]byte{'a'}); err != nil {
						break
					}
					select {
					case <-closed.done:
						break loop
					case <-time.After(20 * time.Millisecond):
					}
				}
				took := closed.wait(t, 3*time.Second)
				if sent >= length {
					t.Fatalf("the whole body was sent before the server gave up on it")
				}
				if took < testReadTimeout-20*time.Millisecond || took > testReadTimeout+time.Second {
					t.Errorf("the server gave up on the body after %s, want about the read timeout %s", took, testReadTimeout)
				}
			})
		}
		t.Run(l.name+"/idle", func(t *testing.T) {
			t.Parallel()
			conn := dial(t, addr)
			if _, err := io.WriteString(conn, "GET "+l.get+" HTTP/1.1\r\nHost: tapline\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(conn)
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.Close {
				t.Fatalf("the server closed the connection after the first answer (%d); want keep-alive", res.StatusCode)
			}
			start := time.Now()
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
				t.Fatalf("idle connection: read %v, want EOF (closed by the server)", err)
			}
			if took := time.Since(start); took < testIdleTimeout-20*time.Millisecond || took > testIdleTimeout+time.Second {
				t.Errorf("the idle connection was closed after %s, want about the idle timeout %s", took, testIdleTimeout)
			}
		})
	}
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// hangup is when the server closed a connection.
type hangup struct {
	done  chan struct{} // closed when it did
	after time.Duration // how long after closedAfter, once done is closed
}

// closedAfter reads conn until the server closes it, whatever it answers
// first.
func closedAfter(conn net.Conn) *hangup {
	h := &hangup{done: make(chan struct{})}
	start := time.Now()
	_ = conn.SetReadDeadline(start.Add(10 * time.Second))
	go func() {
		_, _ = io.Copy(io.Discard, conn)
		h.after = time.Since(start)
		close(h.done)
	}()
	return h
}

// wait returns how long the server took to hang up, failing the test if it
// has not within the bound.
func (h *hangup) wait(t *testing.T, within time.Duration) time.Duration {
	t.Helper()
	select {
	case <-h.done:
		return h.after
	case <-time.After(within):
		t.Fatalf("the server kept the connection open for %s", within)
		return 0
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
			v, err := n.lagCheck().Run(ctx)
			if v != strconv.Itoa(published)+" messages" || (err != nil) != tt.fails {
				t.Errorf("bound %d: %q, %v; want %d messages, failing %v", tt.bound, v, err, published, tt.fails)
			}
			if err != nil && !strings.Contains(tapline.ErrorMessage(err), "-health-max-lag") {
				t.Errorf("the failure does not name the flag: %v", err)
			}
		})
	}
}
