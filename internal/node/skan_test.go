package node

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"tapline"
	"tapline/dashboard"
	"tapline/postgres/pgtest"
)

// TestSKANAllInOne posts Apple's published sample postbacks to the
// all-in-one's collector, as Apple's copies and as an ad network's
// forward, verified with Apple's real keys (its development keys on, for
// the AdAttributionKit sample), and reads the dashboard's report: its
// numbers are what was posted.
func TestSKANAllInOne(t *testing.T) {
	ctx := context.Background()
	const admin = "skan-admin-token-0123456789"
	cfg := NewConfig()
	cfg.DatabaseURL = pgtest.URL(t)
	cfg.DataDir = t.TempDir()
	cfg.CollectorAddr, cfg.DashboardAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Demo, cfg.AdminToken, cfg.SKANDevelopmentKeys = true, admin, true
	cfg.SKANBurst, cfg.SKANMaxRejected, cfg.PostbackRetention = 9, 7, 240*time.Hour
	n := New(cfg, nil)
	if err := n.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	// The limits reach the collector, the store and the dashboard.
	if c := n.Collector.Config; c.SKANBurst != 9 || c.SKANRate != 1 || n.SKAN.MaxRejected != 7 || n.Dashboard.Config.DeliveryRetention != 240*time.Hour {
		t.Errorf("SKANRate %g, SKANBurst %d, MaxRejected %d, DeliveryRetention %s; want 1, 9, 7, 240h",
			c.SKANRate, c.SKANBurst, n.SKAN.MaxRejected, n.Dashboard.Config.DeliveryRetention)
	}
	demo, err := SeedDemo(ctx, n.Accounts)
	if err != nil {
		t.Fatal(err)
	}
	app := demo.App // its App Store id is the app-id of Apple's SKAdNetwork samples, its schema labels 20, 63 and high
	if app.AppStoreID != 525463029 || app.ConversionSchema.Label("63") != "subscription" {
		t.Fatalf("demo app %d, schema %v", app.AppStoreID, app.ConversionSchema.Values())
	}
	aak := &tapline.App{AccountID: app.AccountID, Name: "AdAttributionKit sample", AppStoreID: 10738027756}
	if err := n.Accounts.CreateApp(ctx, aak); err != nil {
		t.Fatal(err)
	}

	client := &http.Client{Timeout: 10 * time.Second}
	post := func(path, key string, body []byte) (int, dashboard.SKANPostbackView) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.CollectorURL+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		var out struct {
			ID     int64              `json:"id"`
			Status tapline.SKANStatus `json:"status"`
		}
		_ = json.Unmarshal(b, &out)
		return res.StatusCode, dashboard.SKANPostbackView{SKANPostback: &tapline.SKANPostback{ID: out.ID, Status: out.Status}}
	}
	sample := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("..", "..", "skadnetwork", "testdata", "apple", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	const copyPath, aakPath, fwdPath = "/.well-known/skadnetwork/report-attribution/", "/.well-known/appattribution/report-attribution/", "/v1/skadnetwork/postbacks"
	for _, tc := range []struct {
		path, key, file string
		edit            func(m map[string]any)
		want            tapline.SKANStatus
	}{
		// The network forwards the fine 4.0 postback first; Apple's copy
		// of it is then a duplicate.
		{fwdPath, DemoSDKKey, "skan-4.0-web-fine.json", func(m map[string]any) { m["network-received-at"] = "2026-03-10T10:00:00Z" }, tapline.SKANVerified},
		{copyPath, "", "skan-4.0-web-fine.json", nil, tapline.SKANDuplicate},
		{copyPath, "", "skan-4.0-web-coarse.json", nil, tapline.SKANVerified},
		{copyPath, "", "skan-2.2.json", nil, tapline.SKANVerified},
		{copyPath, "", "skan-2.2.json", nil, tapline.SKANVerified}, // Apple's retry: the same row
		// Apple's winning 3.0 sample reuses the 2.2 sample's transaction id.
		{copyPath, "", "skan-3.0-winning.json", nil, tapline.SKANDuplicate},
		{copyPath, "", "skan-3.0-nonwinning.json", nil, tapline.SKANVerified},
		// A signed field changed: rejected.
		{copyPath, "", "skan-4.0-web-coarse.json", func(m map[string]any) { m["source-identifier"] = "40" }, tapline.SKANRejected},
		{aakPath, "", "aak-developer-settings.json", nil, tapline.SKANVerified},
	} {
		body := sample(tc.file)
		if tc.edit != nil {
			var m map[string]any
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatal(err)
			}
			tc.edit(m)
			body, _ = json.Marshal(m)
		}
		if code, res := post(tc.path, tc.key, body); code != http.StatusOK || res.Status != tc.want {
			t.Errorf("%s to %s: %d %s, want 200 %s", tc.file, tc.path, code, res.Status, tc.want)
		}
	}

	report := func(appID int64) dashboard.SKANReport {
		t.Helper()
		today := time.Now().UTC().Format("2006-01-02")
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.DashboardURL+"/api/v1/apps/"+strconv.FormatInt(appID, 10)+"/skadnetwork?to="+today, nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var rep dashboard.SKANReport
		if err := json.NewDecoder(res.Body).Decode(&rep); err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("report: %d, %v", res.StatusCode, err)
		}
		return rep
	}
	rep := report(app.ID)
	// Installs: the fine 4.0, the coarse 4.0 and the 2.2 postbacks; the
	// 2.2 one a redownload.
	if want := (dashboard.SKANTotals{Installs: 3, NotWon: 1, Rejected: 1, Duplicates: 2, Redownloads: 1}); rep.Totals != want {
		t.Errorf("totals %+v, want %+v", rep.Totals, want)
	}
	wantValues := []dashboard.SKANValueRow{
		{Value: "20", Label: "purchase", ByWindow: [3]int64{1, 0, 0}, Total: 1},
		{Value: "63", Label: "subscription", ByWindow: [3]int64{1, 0, 0}, Total: 1},
		{Value: "high", Label: "paying user", ByWindow: [3]int64{1, 0, 0}, Total: 1},
	}
	if !reflect.DeepEqual(rep.Values, wantValues) {
		t.Errorf("values %+v\nwant %+v", rep.Values, wantValues)
	}
	wantNetworks := []dashboard.SKANNetworkRow{
		{AdNetwork: "com.example", SourceIdentifier: "39", SKANTotals: dashboard.SKANTotals{Installs: 1}},
		{AdNetwork: "com.example", SourceIdentifier: "42", SKANTotals: dashboard.SKANTotals{Installs: 1, Redownloads: 1}},
		{AdNetwork: "com.example", SourceIdentifier: "5239", SKANTotals: dashboard.SKANTotals{Installs: 1, Duplicates: 1}},
		{AdNetwork: "example123.skadnetwork", SourceIdentifier: "42", SKANTotals: dashboard.SKANTotals{NotWon: 1, Duplicates: 1}},
	}
	if !reflect.DeepEqual(rep.Networks, wantNetworks) {
		t.Errorf("networks %+v\nwant %+v", rep.Networks, wantNetworks)
	}
	// Apple's AdAttributionKit sample is a re-engagement: no install.
	if rep := report(aak.ID); rep.Totals != (dashboard.SKANTotals{Reengagements: 1}) || len(rep.Counts) != 1 || rep.Counts[0].Value != "24" {
		t.Errorf("AdAttributionKit app: %+v", rep)
	}
}
