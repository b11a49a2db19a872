package chaos

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestCampaignShort builds the binaries, runs the 60-second campaign
// against them (real processes, the kfake broker in a process of its own,
// a PostgreSQL cluster of the test's own) and wants PASS: every
// acknowledged event counted exactly once, every fault kind injected.
func TestCampaignShort(t *testing.T) {
	if testing.Short() {
		t.Skip("the fault campaign runs real processes for about a minute; skipped with -short")
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin, "tapline/cmd/collector", "tapline/cmd/matcher", "tapline/cmd/tapline",
		"tapline/bench/cmd/kfakebroker") // the binaries the campaign starts
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the binaries: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	var out bytes.Buffer
	res, err := Run(ctx, Config{BinDir: bin, Short: true, Seed: 7}, &out)
	t.Logf("campaign output:\n%s", out.String())
	if err != nil {
		t.Fatalf("run the campaign: %v", err)
	}
	if err := res.WriteJSON(filepath.Join(t.TempDir(), "result.json")); err != nil {
		t.Fatal(err)
	}
	if res.Verdict != "PASS" {
		t.Fatalf("verdict %s, want PASS: %v", res.Verdict, res.Failures)
	}
	kinds := map[string]int{}
	for _, f := range res.Faults {
		kinds[f.Kind]++
		if f.Known && os.Geteuid() == 0 {
			t.Errorf("fault %s on %s not injected as root: %s", f.Kind, f.Target, f.Showed)
		}
	}
	if kinds[MatcherClock] != 2 {
		t.Errorf("%d matcher clock faults, want 2 (ahead and behind)", kinds[MatcherClock])
	}
	for name, k := range FaultNames {
		if name == "broker-wipe" {
			continue // only on request
		}
		if kinds[k] == 0 {
			t.Errorf("fault %q was not injected", k)
		}
	}
	for _, tot := range res.Totals {
		if tot.EventsAcked == 0 || tot.EventsCounted != tot.EventsAcked || tot.Installs == 0 || tot.Conversions != tot.Installs {
			t.Errorf("%s: %d events acknowledged, %d counted; %d installs, %d conversions", tot.Topology,
				tot.EventsAcked, tot.EventsCounted, tot.Installs, tot.Conversions)
		}
		if tot.HitsCounted == 0 || tot.HitsCounted > tot.HitsOffered {
			t.Errorf("%s: %d hits counted of %d offered", tot.Topology, tot.HitsCounted, tot.HitsOffered)
		}
		if tot.HitIDs == 0 || tot.HitIDs != tot.HitsCounted || tot.HitTaps != tot.HitIDs || tot.HitsStored != tot.HitIDs {
			t.Errorf("%s: %d hits counted; raw store %s: %d rows, %d distinct ids, %d distinct taps", tot.Topology,
				tot.HitsCounted, tot.HitStore, tot.HitsStored, tot.HitIDs, tot.HitTaps)
		}
	}
}

// TestScrape reads a Prometheus text page the way the campaign reads the
// collectors' /metrics: samples of a name summed over their labels.
func TestScrape(t *testing.T) {
	page := "# HELP x y\n# TYPE tapline_collector_spooled_messages gauge\ntapline_collector_spooled_messages 12\n" +
		"tapline_collector_requests_total{route=\"tap\",code=\"302\"} 5\ntapline_collector_requests_total{route=\"event\",code=\"200\"} 7\n" +
		"go_goroutines 41\n"
	srv := newTextServer(t, page)
	m, err := scrape(context.Background(), srv+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{"tapline_collector_spooled_messages": 12, "tapline_collector_requests_total": 12, "go_goroutines": 41} {
		if m[name] != want {
			t.Errorf("%s = %v, want %v", name, m[name], want)
		}
	}
}

func newTextServer(tb testing.TB, body string) string {
	tb.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write([]byte(body))
	}))
	tb.Cleanup(srv.Close)
	return srv.URL
}
