package node

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"tapline"
	"tapline/postgres"
	"tapline/postgres/pgtest"
)

// TestCollectorSurvivesKafkaOutage stops the broker under load and starts
// it again: every tap the collector queued and every SDK event it
// acknowledged must reach the facts exactly once.
func TestCollectorSurvivesKafkaOutage(t *testing.T) {
	ctx := context.Background()
	kdir := t.TempDir()
	startKafka := func(port int) *kfake.Cluster {
		t.Helper()
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(kdir))
		if err != nil {
			t.Fatalf("start kfake on port %d: %v", port, err)
		}
		return c
	}
	cluster := startKafka(0)
	_, p, _ := net.SplitHostPort(cluster.ListenAddrs()[0])
	port, _ := strconv.Atoi(p)
	dbURL := pgtest.URL(t)

	open := func(target string) *Node {
		t.Helper()
		cfg := NewConfig()
		cfg.Target = target
		cfg.DatabaseURL = dbURL
		cfg.DataDir = t.TempDir()
		cfg.CollectorAddr, cfg.MetricsAddr = "127.0.0.1:0", "127.0.0.1:0"
		cfg.KafkaBrokers = cluster.ListenAddrs()[0]
		cfg.Demo = true
		cfg.TrustedProxy = "127.0.0.1"
		cfg.TapRate = 1e6 // one address taps thousands of times: a load test, not a click farm
		n := New(cfg, nil)
		if err := n.Open(ctx); err != nil {
			t.Fatalf("open %s: %v", target, err)
		}
		return n
	}
	coll := open(TargetCollector)
	coll.Spool.AttemptTimeout = 300 * time.Millisecond
	coll.Spool.RetryInterval = 100 * time.Millisecond

	client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var taps, events atomic.Int64
	var seq atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := seq.Add(1)
				ip := fmt.Sprintf("203.0.113.%d", w+1)
				req, _ := http.NewRequest(http.MethodGet, coll.CollectorURL+"/l/"+DemoLinkSlug, nil)
				req.Header.Set("User-Agent", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1")
				req.Header.Set("X-Forwarded-For", ip)
				if resp, err := client.Do(req); err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusFound {
						taps.Add(1)
					} else {
						t.Errorf("tap answered %d during the outage", resp.StatusCode)
					}
				}
				form := url.Values{"secret": {DemoSDKSecret}, "uuid": {fmt.Sprintf("device-%d", i)}, "platform": {"iOS"},
					"model": {"iPhone15,2"}, "os": {"iOS 17.4.1"}, "created-ms": {strconv.FormatInt(time.Now().UnixMilli(), 10)}}
				req, _ = http.NewRequest(http.MethodPost, coll.CollectorURL+"/"+DemoAccount+"/event/ios-demo-open/", strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("X-Forwarded-For", ip)
				if resp, err := client.Do(req); err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						events.Add(1)
					}
				}
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	cluster.Close()
	time.Sleep(time.Second)
	spooled := coll.Spool.SpooledMessages()
	cluster = startKafka(port)
	defer cluster.Close()
	time.Sleep(700 * time.Millisecond)
	close(stop)
	wg.Wait()
	if spooled == 0 {
		t.Fatal("nothing was spooled while the broker was down")
	}
	deadline := time.Now().Add(30 * time.Second)
	for coll.Spool.SpooledMessages() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d messages still spooled 30 s after the broker returned", coll.Spool.SpooledMessages())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := coll.Close(); err != nil { // drains the hit queue to Kafka
		t.Fatal(err)
	}
	if dropped := counter(t, coll, "tapline_collector_hits_dropped_total"); dropped != 0 {
		t.Fatalf("%v hits dropped; the queue should have held them through a short outage", dropped)
	}

	match := open(TargetMatcher)
	defer match.Close()
	demo, err := SeedDemo(ctx, match.Accounts)
	if err != nil {
		t.Fatal(err)
	}
	reports := postgres.NewReports(match.DB)
	day := time.Now().UTC().Truncate(24 * time.Hour)
	totals := func() (hits, evs int64) {
		t.Helper()
		days, err := reports.DailyStats(ctx, tapline.StatsFilter{AppID: demo.App.ID, From: day.Add(-24 * time.Hour), To: day.Add(48 * time.Hour), Location: time.UTC})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range days {
			hits += d.Hits
			evs += d.Events
		}
		return hits, evs
	}
	deadline = time.Now().Add(60 * time.Second)
	for h, e := totals(); (h < taps.Load() || e < events.Load()) && time.Now().Before(deadline); h, e = totals() {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // anything counted twice would show by now
	hits, evs := totals()
	if hits != taps.Load() || evs != events.Load() {
		t.Fatalf("facts: %d hits and %d events; the collector answered %d taps and acknowledged %d events (%d messages were spooled)",
			hits, evs, taps.Load(), events.Load(), spooled)
	}
	t.Logf("%d taps and %d events through an outage, %d spooled at its height", taps.Load(), events.Load(), spooled)
}

// counter returns the value of a counter in the node's registry.
func counter(t *testing.T, n *Node, name string) float64 {
	t.Helper()
	families, err := n.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			var sum float64
			for _, m := range f.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
