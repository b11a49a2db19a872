package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	pdb "github.com/cockroachdb/pebble/v2"
	"github.com/jackc/pgx/v5"

	"tapline"
	"tapline/postgres/pgtest"
)

// TestErasureEndToEnd runs the all-in-one (embedded bus and raw store,
// PostgreSQL), follows two devices' taps, installs and an open through it,
// erases one device by its advertising id through the API and, once the
// matcher reports the request done, reads every row of every PostgreSQL
// table and every key and value of the raw store: the erased device's
// advertising id, address, fingerprint and masked network appear nowhere,
// the other device's do, and the fact counts are as before.
func TestErasureEndToEnd(t *testing.T) {
	ctx := context.Background()
	cfg := NewConfig()
	cfg.DatabaseURL = pgtest.URL(t)
	cfg.DataDir = t.TempDir()
	cfg.CollectorAddr, cfg.DashboardAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Demo = true
	cfg.TrustedProxy = "127.0.0.1"
	token := strings.Repeat("t", 32)
	cfg.AdminToken = token
	n := New(cfg, nil)
	if err := n.Open(ctx); err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			n.Close()
		}
	})
	demo, err := SeedDemo(ctx, n.Accounts)
	if err != nil {
		t.Fatal(err)
	}

	type device struct {
		adID, ip, uuid string
	}
	erased := device{"6d9c5b8e-1f2a-4c3b-9d8e-7f6a5b4c3d2e", "203.0.113.77", "0b8f2c4d-1e7a-4f0e-9a55-0e1f2a3b4c5d"}
	kept := device{"0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "198.51.100.23", "b7f8c2d4-0d7e-4f0e-9a55-0e1f2a3b4c5d"}
	client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	send := func(req *http.Request, ip string, want int) *http.Response {
		t.Helper()
		req.Header.Set("X-Forwarded-For", ip)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d, want %d", req.Method, req.URL, resp.StatusCode, want)
		}
		return resp
	}
	event := func(d device, name, referrer string) {
		t.Helper()
		form := url.Values{
			"secret": {DemoSDKSecret}, "sdkversion": {"4.0.0"}, "uuid": {d.uuid},
			"platform": {"Android"}, "vendor": {"Google"}, "model": {"Pixel 7"}, "os": {"Android 14"},
			"hardware-android-advertising-id": {strings.ToUpper(d.adID)},
			"created-ms":                      {strconv.FormatInt(time.Now().UnixMilli(), 10)},
		}
		if referrer != "" {
			form.Set("android-referrer", referrer)
		}
		req, _ := http.NewRequest(http.MethodPost, n.CollectorURL+"/"+DemoAccount+"/event/"+name, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		send(req, d.ip, http.StatusOK)
	}
	for _, d := range []device{erased, kept} {
		req, _ := http.NewRequest(http.MethodGet, n.CollectorURL+"/l/"+DemoLinkSlug+"?gaid="+d.adID, nil)
		req.Header.Set("User-Agent", "Mozilla/5.0 (Linux; Android 14; Pixel 7 Build/UQ1A.240205.004; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/122.0.6261.105 Mobile Safari/537.36")
		resp := send(req, d.ip, http.StatusFound)
		loc, _ := url.Parse(resp.Header.Get("Location"))
		event(d, "android-demo-install", loc.Query().Get("referrer"))
		event(d, "android-demo-open", "")
	}

	day := time.Now().UTC().Truncate(24 * time.Hour)
	stats := func() []tapline.DailyStats {
		t.Helper()
		days, err := n.Dashboard.Reports.DailyStats(ctx, tapline.StatsFilter{AppID: demo.App.ID, From: day, To: day.Add(24 * time.Hour), Location: time.UTC})
		if err != nil {
			t.Fatal(err)
		}
		return days
	}
	deadline := time.Now().Add(30 * time.Second)
	var before []tapline.DailyStats
	for {
		before = stats()
		if len(before) == 1 && before[0].Conversions == 2 && before[0].Events >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("facts after 30 s: %+v, want 2 conversions and the opens", before)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if d := before[0]; d.Hits != 2 || d.Installs != 2 {
		t.Fatalf("before the erasure: %+v, want 2 hits and 2 installs", d)
	}

	// The request, as an owner's tool sends it (the admin token here).
	admin := func(method, path, body string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, n.DashboardURL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(resp.Body)
		return resp.StatusCode, buf.Bytes()
	}
	status, body := admin(http.MethodDelete, fmt.Sprintf("/api/v1/apps/%d/devices", demo.App.ID), `{"ad_id":"`+strings.ToUpper(erased.adID)+`"}`)
	if status != http.StatusAccepted {
		t.Fatalf("erase: %d %s, want 202", status, body)
	}
	var req struct {
		StatusURL string                `json:"status_url"`
		Status    string                `json:"status"`
		Counts    tapline.ErasureCounts `json:"counts"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for req.Status != "done" {
		if time.Since(start) > 30*time.Second {
			t.Fatalf("erasure not done after 30 s: %s", body)
		}
		time.Sleep(100 * time.Millisecond)
		if status, body = admin(http.MethodGet, req.StatusURL, ""); status != http.StatusOK {
			t.Fatalf("status: %d %s", status, body)
		}
		if err := json.Unmarshal(body, &req); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("erasure done in %s: %+v", time.Since(start).Round(time.Millisecond), req.Counts)
	if w := (tapline.ErasureCounts{Hits: 1, Events: 2, Conversions: 1, Rows: 1}); req.Counts != w {
		t.Errorf("erasure counts = %+v, want %+v", req.Counts, w)
	}
	if after := stats(); !reflect.DeepEqual(after, before) {
		t.Errorf("facts after the erasure = %+v, want them as before, %+v", after, before)
	}

	// Every row of every PostgreSQL table.
	needles := func(d device) []string {
		return []string{d.adID, strings.ToUpper(d.adID), d.ip, d.ip + "|android", maskedNet(d.ip)}
	}
	conn, err := pgx.Connect(ctx, cfg.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tables, err := pgx.CollectRows(must(conn.Query(ctx, `SELECT table_name::text FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1`)), pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for _, table := range tables {
		var rows string
		if err := conn.QueryRow(ctx, `SELECT coalesce(string_agg(t::text, E'\n'), '') FROM `+pgx.Identifier{table}.Sanitize()+` t`).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		for _, s := range needles(erased) {
			if strings.Contains(rows, s) {
				t.Errorf("PostgreSQL table %s still holds %q", table, s)
			}
		}
		all.WriteString(rows)
	}
	if !strings.Contains(all.String(), maskedNet(kept.ip)) {
		t.Errorf("PostgreSQL holds no trace of the other device (%s): the scan reads nothing", maskedNet(kept.ip))
	}
	var hashes int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM conversions c JOIN erasure_requests r ON r.app_id = c.app_id AND c.ad_id_hash = r.key_hash`).Scan(&hashes); err != nil || hashes != 0 {
		t.Errorf("conversions with the erased advertising id's hash: %d, %v; want 0", hashes, err)
	}
	var kept1 int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM conversions WHERE ad_id_hash <> '' AND fingerprint <> ''`).Scan(&kept1); err != nil || kept1 != 1 {
		t.Errorf("conversions with a hash and fingerprint: %d, %v; want the other device's", kept1, err)
	}

	// Every key and value of the raw store, read with the node closed.
	closed = true
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := pdb.Open(filepath.Join(cfg.DataDir, "raw"), &pdb.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	it, err := db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	keys, keptSeen := 0, 0
	for it.First(); it.Valid(); it.Next() {
		keys++
		kv := append(append([]byte{}, it.Key()...), it.Value()...)
		for _, s := range needles(erased) {
			if bytes.Contains(kv, []byte(s)) {
				t.Errorf("raw store key %q holds %q", it.Key(), s)
			}
		}
		if bytes.Contains(kv, []byte(kept.adID)) {
			keptSeen++
		}
	}
	if err := it.Error(); err != nil {
		t.Fatal(err)
	}
	if keptSeen == 0 {
		t.Errorf("the raw store's %d keys hold nothing of the other device: the scan reads nothing", keys)
	}
	t.Logf("read %d PostgreSQL tables and %d raw store keys", len(tables), keys)
}

// maskedNet returns the /24 of an IPv4 address.
func maskedNet(ip string) string {
	return ip[:strings.LastIndex(ip, ".")] + ".0/24"
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
