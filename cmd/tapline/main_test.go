package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"tapline"
	"tapline/dashboard"
	"tapline/internal/node"
	"tapline/postgres/pgtest"
)

const iphoneSafari = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1"

// runMain starts the all-in-one on free ports with a private database and
// data directory, as `make run` does, and stops it at cleanup.
func runMain(t *testing.T, extra ...string) (*Main, *bytes.Buffer) {
	t.Helper()
	var out bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &out}
	args := append([]string{"run",
		"-database-url", pgtest.URL(t),
		"-data-dir", t.TempDir(),
		"-collector-addr", "127.0.0.1:0",
		"-dashboard-addr", "127.0.0.1:0",
		"-trusted-proxies", "127.0.0.1/32",
		"-demo",
	}, extra...)
	if err := m.Run(context.Background(), args); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return m, &out
}

// TestEndToEnd taps the demo link with an iPhone Safari User-Agent from one
// IP, posts an install in the Tapstream iOS protocol from the same IP and
// device, and waits for the conversion in the dashboard's JSON.
func TestEndToEnd(t *testing.T) {
	m, out := runMain(t)
	n := m.Node
	for _, want := range []string{n.DashboardURL, node.DemoEmail, node.DemoPassword, n.CollectorURL + "/l/" + node.DemoLinkSlug} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the start banner lacks %q:\n%s", want, out.String())
		}
	}
	const phoneIP = "203.0.113.77"
	tap(t, n, node.DemoLinkSlug+"?utm_campaign=e2e", phoneIP)
	postInstall(t, n, phoneIP, "8C5F2A4E-3B1D-4F6A-9E2B-7D1C0A9B8E71")

	// The dashboard, logged in as the demo user.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Timeout: 5 * time.Second, Jar: jar}
	resp, err := browser.PostForm(n.DashboardURL+"/login", url.Values{"login": {node.DemoEmail}, "password": {node.DemoPassword}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK { // after the 303 to /apps
		t.Fatalf("login: status %d", resp.StatusCode)
	}
	demo, err := node.SeedDemo(context.Background(), n.Accounts)
	if err != nil {
		t.Fatal(err)
	}
	today := time.Now().UTC().Format("2006-01-02")
	daily := fmt.Sprintf("%s/api/v1/apps/%d/daily?from=%s&to=%s&tz=UTC", n.DashboardURL, demo.App.ID, today, today)
	deadline := time.Now().Add(15 * time.Second)
	for {
		var body struct {
			Days []tapline.DailyStats `json:"days"`
		}
		resp, err := browser.Get(daily)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("daily: status %d", resp.StatusCode)
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(body.Days) == 1 && body.Days[0].Conversions == 1 {
			d := body.Days[0]
			if d.Hits != 1 || d.Installs != 1 || d.OrganicInstalls != 0 || d.ConversionRate != 1 {
				t.Fatalf("day = %+v, want 1 hit, 1 install, 1 conversion, rate 1", d)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no conversion in the dashboard after 15 s: %+v", body.Days)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The conversions explorer has it, with the decision, written in the
	// flush that counted it.
	resp, err = browser.Get(fmt.Sprintf("%s/api/v1/apps/%d/conversions?q=%s", n.DashboardURL, demo.App.ID, "8C5F2A4E-3B1D-4F6A-9E2B-7D1C0A9B8E71"))
	if err != nil {
		t.Fatal(err)
	}
	var page dashboard.ConversionsPage
	err = json.NewDecoder(resp.Body).Decode(&page)
	resp.Body.Close()
	if err != nil || len(page.Conversions) != 1 {
		t.Fatalf("explorer: %v, %d conversions, want 1", err, len(page.Conversions))
	}
	c := page.Conversions[0]
	if c.Method != tapline.MethodFingerprint || c.LinkID != demo.Link.ID || c.Decision == nil ||
		(c.Decision.Rule != tapline.RuleFingerprint && c.Decision.Rule != tapline.RuleLateHit) || // the install may be matched before the tap, which then claims it
		len(c.Decision.Candidates) == 0 || !c.Decision.Candidates[0].Chosen || c.Campaign["campaign"] != "e2e" {
		t.Errorf("explorer conversion = %+v (decision %+v), want a fingerprint match on the demo link in campaign e2e, explained", c, c.Decision)
	}
}

// tap taps the link path (a slug, maybe with a query) from an iPhone with
// Safari at ip, as a phone would, and checks the redirect.
func tap(t *testing.T, n *node.Node, path, ip string) {
	t.Helper()
	client := &http.Client{
		Timeout:       5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, _ := http.NewRequest(http.MethodGet, n.CollectorURL+"/l/"+path, nil)
	req.Header.Set("User-Agent", iphoneSafari)
	req.Header.Set("X-Forwarded-For", ip)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), "https://apps.apple.com/") {
		t.Fatalf("tap: %d to %q, want 302 to the App Store", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// postInstall posts the install of the demo app from the same iPhone at
// ip, as the Tapstream iOS SDK does, with installation id uuid.
func postInstall(t *testing.T, n *node.Node, ip, uuid string) {
	t.Helper()
	form := url.Values{
		"secret": {node.DemoSDKSecret}, "sdkversion": {"2.12.0"}, "uuid": {uuid},
		"platform": {"iOS"}, "vendor": {"Apple"}, "model": {"iPhone15,2"}, "os": {"iOS 17.4.1"},
		"resolution": {"1179x2556"}, "locale": {"en_US"}, "app-name": {"Demo"}, "app-version": {"1.0"},
		"package-name": {"com.example.demo"}, "gmtoffset": {"0"},
		"created-ms": {strconv.FormatInt(time.Now().UnixMilli(), 10)},
	}
	req, _ := http.NewRequest(http.MethodPost, n.CollectorURL+"/"+node.DemoAccount+"/event/ios-demo-install/", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Forwarded-For", ip)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("install: status %d, want 200", resp.StatusCode)
	}
}

// TestRestartKeepsCounts checks that closing the node (what SIGTERM does)
// drains every accepted hit, and that a second run on the same data
// directory resumes where the first stopped, with nothing counted twice.
func TestRestartKeepsCounts(t *testing.T) {
	dbURL := pgtest.URL(t)
	dir := t.TempDir()
	start := func() *Main {
		m := &Main{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}}
		if err := m.Run(context.Background(), []string{"run", "-database-url", dbURL, "-data-dir", dir,
			"-collector-addr", "127.0.0.1:0", "-dashboard-addr", "127.0.0.1:0", "-demo"}); err != nil {
			t.Fatal(err)
		}
		return m
	}
	tap := func(m *Main, n int) {
		for range n {
			req, _ := http.NewRequest(http.MethodGet, m.Node.CollectorURL+"/l/"+node.DemoLinkSlug, nil)
			req.Header.Set("User-Agent", iphoneSafari)
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
	}
	hits := func(m *Main) int64 {
		demo, err := node.SeedDemo(context.Background(), m.Node.Accounts)
		if err != nil {
			t.Fatal(err)
		}
		var total int64
		f := tapline.StatsFilter{AppID: demo.App.ID, From: time.Now().UTC().Truncate(24 * time.Hour), To: time.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour), Location: time.UTC}
		days, err := m.Node.Dashboard.Reports.DailyStats(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range days {
			total += d.Hits
		}
		return total
	}

	m := start()
	tap(m, 25)
	if err := m.Close(); err != nil { // drains the hit queue, flushes the facts
		t.Fatal(err)
	}
	m = start()
	defer m.Close()
	tap(m, 5)
	deadline := time.Now().Add(10 * time.Second)
	for hits(m) != 30 {
		if time.Now().After(deadline) {
			t.Fatalf("hits = %d after a restart, want 30", hits(m))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
