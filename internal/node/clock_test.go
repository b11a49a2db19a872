package node

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"tapline"
	"tapline/postgres/pgtest"
)

// tapAndInstall taps the demo link carrying idfa, then posts the install
// of session with that IDFA, stamped created-ms by a device clock off by
// deviceOff.
func tapAndInstall(t *testing.T, n *Node, idfa, session string, deviceOff time.Duration) {
	t.Helper()
	tapDemo(t, n, "?idfa="+idfa)
	form := url.Values{"secret": {DemoSDKSecret}, "uuid": {session}, "platform": {"iOS"}, "hardware-ios-idfa": {idfa},
		"created-ms": {strconv.FormatInt(time.Now().Add(deviceOff).UnixMilli(), 10)}}
	resp, err := demoClient.PostForm(n.CollectorURL+"/"+DemoAccount+"/event/ios-demo-install/", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("install: %d", resp.StatusCode)
	}
}

// TestDeviceClockSkew: installs from phones whose clocks run 5 h behind
// and 3 h ahead are still credited to the taps that led to them (without
// the clamp the one behind seems to install before its tap, and is
// organic), and both count on the day they were received.
func TestDeviceClockSkew(t *testing.T) {
	token := strings.Repeat("t", 32)
	n, _ := openDemo(t, func(c *Config) { c.AdminToken = token })
	tapAndInstall(t, n, "11111111-2222-4333-8444-555555555555", "A0000000-0000-4000-8000-000000000001", -5*time.Hour)
	tapAndInstall(t, n, "66666666-7777-4888-8999-AAAAAAAAAAAA", "A0000000-0000-4000-8000-000000000002", 3*time.Hour)
	waitDay(t, n, token, "two credited installs", func(d tapline.DailyStats) bool { return d.Conversions == 2 && d.Installs == 2 })
	if got := counter(t, n, "tapline_matcher_device_clock_clamped_total"); got != 1 {
		// The 3 h ahead is replaced by the collector already (its
		// MaxClockSkew), the 5 h behind by the matcher.
		t.Errorf("tapline_matcher_device_clock_clamped_total = %v, want 1", got)
	}
}

// TestMatcherClockOffset runs the collector, a matcher whose clock is 5
// minutes ahead or behind (-clock-offset) and the dashboard as separate
// nodes on kfake: a tap and the install it led to are still credited and
// counted once, with -matcher-clock-skew at its default.
func TestMatcherClockOffset(t *testing.T) {
	for _, off := range []time.Duration{5 * time.Minute, -5 * time.Minute} {
		t.Run(off.String(), func(t *testing.T) {
			cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(cluster.Close)
			dbURL, token := pgtest.URL(t), strings.Repeat("t", 32)
			open := func(target string, offset time.Duration) *Node {
				t.Helper()
				cfg := NewConfig()
				cfg.Target, cfg.DatabaseURL, cfg.DataDir = target, dbURL, t.TempDir()
				cfg.CollectorAddr, cfg.DashboardAddr, cfg.MetricsAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
				cfg.KafkaBrokers = strings.Join(cluster.ListenAddrs(), ",")
				cfg.AdminToken, cfg.Demo, cfg.ClockOffset = token, target == TargetCollector, offset
				n := New(cfg, nil)
				if err := n.Open(context.Background()); err != nil {
					t.Fatalf("open %s: %v", target, err)
				}
				t.Cleanup(func() { n.Close() })
				return n
			}
			coll := open(TargetCollector, 0)
			open(TargetMatcher, off)
			dash := open(TargetDashboard, 0)
			tapAndInstall(t, coll, "12121212-3434-4565-8787-909090909090", "B0000000-0000-4000-8000-000000000001", 0)
			d := waitDay(t, dash, token, "the credited install", func(d tapline.DailyStats) bool { return d.Conversions == 1 })
			time.Sleep(2500 * time.Millisecond) // two flush intervals: nothing counts twice
			if again := waitDay(t, dash, token, "", func(tapline.DailyStats) bool { return true }); again.Hits != 1 || again.Installs != 1 || again.Conversions != 1 || d.Hits != 1 {
				t.Fatalf("day = %+v, want 1 hit, 1 install, 1 conversion", again)
			}
		})
	}
}
