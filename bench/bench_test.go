package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"tapline/bench"
	"tapline/bench/tapstream1"
	"tapline/funnels"
	"tapline/internal/node"
	"tapline/loadgen"
	"tapline/pebble"
	"tapline/postgres"
	"tapline/postgres/pgtest"
)

// nodeProc is an in-process all-in-one.
type nodeProc struct{ n *node.Node }

func (p *nodeProc) URL() string {
	if p.n.Config.Target == node.TargetDashboard {
		return p.n.DashboardURL
	}
	return p.n.CollectorURL
}
func (p *nodeProc) PIDs() []int  { return []int{os.Getpid()} }
func (p *nodeProc) Stop() error  { return p.n.Close() }
func (p *nodeProc) Name() string { return "tapline" }

// serverProc is an in-process HTTP server.
type serverProc struct {
	srv  *http.Server
	url  string
	pool *pgxpool.Pool
}

func (p *serverProc) URL() string  { return p.url }
func (p *serverProc) PIDs() []int  { return []int{os.Getpid()} }
func (p *serverProc) Name() string { return "tapstream1" }
func (p *serverProc) Stop() error {
	err := p.srv.Close()
	if p.pool != nil {
		p.pool.Close()
	}
	return err
}

// startNode returns a starter of an in-process all-in-one, its config
// adjusted by set.
func startNode(set func(*node.Config)) bench.Starter {
	return func(ctx context.Context, dbURL, dataDir string) (bench.Process, error) {
		nc := node.NewConfig()
		nc.DatabaseURL, nc.DataDir = dbURL, dataDir
		nc.CollectorAddr, nc.DashboardAddr = "127.0.0.1:0", "127.0.0.1:0"
		nc.TrustedProxy = "127.0.0.1/32"
		if set != nil {
			set(&nc)
		}
		n := node.New(nc, slog.New(slog.DiscardHandler))
		if err := n.Open(ctx); err != nil {
			return nil, err
		}
		return &nodeProc{n}, nil
	}
}

// replayNode is the all-in-one of the accuracy check, as the bench
// starts it: one partition per topic, matched in receive order.
func replayNode(nc *node.Config) {
	nc.Partitions, nc.MatcherOrdered = 1, true
	nc.MatcherClockSkew = time.Minute / 3600 // the tests' compression, as the bench scales it
}

// TestAccuracyCheck runs the accuracy check three times: the first
// records the baseline, the second finds the same attributions, and a
// third against a baseline with one install moved fails.
func TestAccuracyCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("starts tapline")
	}
	cfg := bench.NewConfig()
	cfg.DatabaseURL = pgtest.URL(t)
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.Accuracy, cfg.Period, cfg.Compression = 300, time.Hour, 3600
	cfg.StartReplay = startNode(replayNode)
	cfg.Only = []string{"check"}
	cfg.AccuracyBaseline = filepath.Join(t.TempDir(), "accuracy.json")
	run := func() *bench.Results {
		t.Helper()
		c := cfg
		c.WorkDir = t.TempDir()
		res, err := (&bench.Runner{Config: c}).Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	first := run()
	if len(first.Errors) > 0 || first.AccuracyCheck == nil || first.AccuracyCheck.Baseline != "recorded" {
		t.Fatalf("first check: %+v, errors %v; want the baseline recorded", first.AccuracyCheck, first.Errors)
	}
	if acc := first.AccuracyCheck.Populations["acc"]; acc.Installs == 0 || acc.Correct == 0 {
		t.Fatalf("first check scored %+v: want installs, some credited right", acc)
	}
	t.Logf("%d messages; acc %+v", first.AccuracyCheck.Messages, first.AccuracyCheck.Populations["acc"])
	// The what-if replays the check's matching: today's rules find every
	// stored answer again and score as the check does.
	wi, scored := first.AccuracyCheck.WhatIf, first.AccuracyCheck.Populations["acc"]
	if wi == nil || wi.Installs != scored.Installs || wi.Stored != scored.Installs || wi.StoredSame != wi.Stored ||
		wi.Today.Precision != scored.Precision || wi.Today.Recall != scored.Recall || wi.Hypothetical.Installs != scored.Installs {
		t.Errorf("what-if %+v; want the check's %d installs replayed as stored and scored alike (precision %v, recall %v)", wi, scored.Installs, scored.Precision, scored.Recall)
	}
	second := run()
	if len(second.Errors) > 0 || second.AccuracyCheck.Baseline != "same" {
		t.Fatalf("second check: baseline %q, changes %v, errors %v; want the same attributions as the first",
			second.AccuracyCheck.Baseline, second.AccuracyCheck.Changes, second.Errors)
	}

	// One install more credited right in the baseline: the check fails.
	b, err := os.ReadFile(cfg.AccuracyBaseline)
	if err != nil {
		t.Fatal(err)
	}
	var base map[string]any
	if err := json.Unmarshal(b, &base); err != nil {
		t.Fatal(err)
	}
	acc := base["populations"].(map[string]any)["acc"].(map[string]any)
	acc["correct"] = acc["correct"].(float64) + 1
	if b, err = json.Marshal(base); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.AccuracyBaseline, b, 0o644); err != nil {
		t.Fatal(err)
	}
	third := run()
	if third.AccuracyCheck.Baseline != "CHANGED" || len(third.Errors) != 1 || !strings.Contains(third.Errors[0], "changed from the baseline") {
		t.Fatalf("check against a changed baseline: %q, errors %v; want it to fail", third.AccuracyCheck.Baseline, third.Errors)
	}
}

// TestSmoke runs every scenario of the benchmark, tiny, against an
// in-process tapline and baseline, and checks that each produced numbers
// and that tapline attributes an easy population well.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts tapline")
	}
	quiet := slog.New(slog.DiscardHandler)
	cfg := bench.NewConfig()
	cfg.DatabaseURL = pgtest.URL(t)
	cfg.WorkDir = t.TempDir()
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	// A second a hammer: the slow baseline (tapstream1's JSON batch takes
	// over 200 ms a request) answered none in 300 ms on a loaded machine.
	cfg.Workers, cfg.HammerFor = 4, time.Second
	cfg.Accuracy, cfg.Period, cfg.Compression = 150, time.Hour, 3600
	cfg.GrowthBase, cfg.Growth, cfg.Baseline, cfg.Drain = 40, []int{1}, []int{1}, 60
	cfg.FunnelRows, cfg.FunnelGrowth, cfg.LiveFunnels = 6000, 4, 10
	cfg.RunBackfill = backfillInProcess
	cfg.DashboardLinks, cfg.DashboardDays, cfg.DashboardRequests = 30, 5, 10
	cfg.StartDashboard = func(ctx context.Context, dbURL, dataDir string) (bench.Process, error) {
		nc := node.NewConfig()
		nc.Target, nc.DatabaseURL, nc.DataDir, nc.DashboardAddr = node.TargetDashboard, dbURL, dataDir, "127.0.0.1:0"
		n := node.New(nc, quiet)
		if err := n.Open(ctx); err != nil {
			return nil, err
		}
		return &nodeProc{n}, nil
	}
	cfg.Tweak = func(c *loadgen.Config) { // everyone on their own home address
		c.IPv6Share, c.HomeShare, c.CellularShare, c.ChangeIPShare = 0, 1, 0, 0
	}
	cfg.StartTapline = startNode(nil)
	cfg.StartReplay = startNode(replayNode)
	cfg.StartCollector = startNode(func(nc *node.Config) { nc.Target = node.TargetCollector })
	cfg.StartTapstream1 = func(ctx context.Context, dbURL string, links []string, fp time.Duration) (bench.Process, error) {
		pool, err := pgxpool.New(ctx, dbURL)
		if err != nil {
			return nil, err
		}
		s := tapstream1.New(tapstream1.Config{Account: "bench", Secret: "ts1-secret-0123456789", SDKKey: "ts1-key-0123456789abc",
			Links: links, IOSURL: "https://apps.apple.com/app/id1", AndroidURL: "https://play.google.com/store/apps/details?id=x",
			WebURL: "https://example.com/", ClickWindow: 7 * 24 * time.Hour, FingerprintWindow: fp}, pool)
		s.Logger = quiet
		if err := s.Migrate(ctx); err != nil {
			pool.Close()
			return nil, err
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			pool.Close()
			return nil, err
		}
		srv := &http.Server{Handler: s.Handler()}
		go srv.Serve(ln)
		return &serverProc{srv: srv, url: "http://" + ln.Addr().String(), pool: pool}, nil
	}

	cfg.StartGo302 = func(ctx context.Context) (bench.Process, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		srv := &http.Server{Handler: bench.Go302Handler()}
		go srv.Serve(ln)
		return &serverProc{srv: srv, url: "http://" + ln.Addr().String()}, nil
	}

	r := &bench.Runner{Config: cfg}
	res, err := r.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Errors) > 0 {
		t.Fatalf("scenario errors: %v", res.Errors)
	}
	var table bytes.Buffer
	res.WriteTable(&table)
	t.Logf("\n%s", table.String())

	if len(res.Accuracy) != 6 {
		t.Fatalf("accuracy rows = %d, want 3 for each of 2 populations", len(res.Accuracy))
	}
	if a := res.Accuracy[0].Accuracy; a.Precision <= 0.5 || a.Recall <= 0.5 || a.Missing > 0 {
		t.Errorf("tapline accuracy on an easy population = %+v, want precision and recall above 0.5, none missing", a)
	}
	for _, row := range res.Redirect {
		if row.Target == bench.NginxTarget {
			if row.Unavailable == "" {
				t.Errorf("nginx row without nginx: %+v", row)
			}
			continue
		}
		if row.Summary.Rate <= 0 || row.Summary.P99 <= 0 {
			t.Errorf("redirect %s: %+v, want a rate and latencies", row.Target, row.Summary)
		}
		if row.CPUPerRequest == 0 && row.Summary.Requests < 100 {
			// /proc counts CPU in 10 ms ticks: a slow baseline's few
			// requests on a loaded machine may not add up to one.
			t.Logf("redirect %s: %d requests, too few to measure their CPU time", row.Target, row.Summary.Requests)
			continue
		}
		if row.CPUPerRequest <= 0 || row.CPUPerRequest > time.Second {
			t.Errorf("redirect %s: %s of CPU per request, want a measured cost", row.Target, row.CPUPerRequest)
		}
	}
	for _, row := range res.Ingest {
		if row.CPUPerEvent <= 0 {
			t.Errorf("ingest %s %s: no CPU per event measured", row.Target, row.Protocol)
		}
	}
	for _, target := range []string{bench.Go302Target, bench.CollectorTarget} {
		if !slices.ContainsFunc(res.Redirect, func(row bench.RedirectRow) bool { return row.Target == target && row.Summary.Requests > 0 }) {
			t.Errorf("no %s row among %+v", target, res.Redirect)
		}
	}
	if v := res.Ratios["redirect_tapline_over_go302"]; v <= 0 {
		t.Errorf("tapline / bare Go ratio = %v, want one", v)
	}
	if len(res.Ingest) != 6 {
		t.Errorf("ingest rows = %d, want 6 (two protocols, three targets)", len(res.Ingest))
	}
	if !slices.ContainsFunc(res.Ingest, func(row bench.IngestRow) bool { return row.Target == bench.CollectorTarget && row.Summary.Requests > 0 }) {
		t.Errorf("no SDK ingest row of the collector alone among %+v", res.Ingest)
	}
	for _, row := range res.Ingest {
		if row.EventsPerSec <= 0 {
			t.Errorf("ingest %s %s: no events accepted: %+v", row.Target, row.Protocol, row.Summary)
		}
	}
	if len(res.Throughput) != 2 {
		t.Errorf("throughput rows = %+v, want tapline and tapstream1 at 1x", res.Throughput)
	}
	// (A few hundred messages take less CPU than the kernel's 10 ms tick:
	// the null consumer's cost may read 0 here.)
	if m := res.Matcher; m.NullMessages != m.DrainMessages || m.NullPerSec <= 0 || res.Ratios["drain_over_null_consumer"] <= 0 {
		t.Errorf("null consumer read %d messages at %.0f/s against the drain's %d: want the same bus read, a rate and a ratio",
			m.NullMessages, m.NullPerSec, m.DrainMessages)
	}
	if res.Matcher.DrainMessages == 0 || res.Matcher.DrainPerSec <= 0 {
		t.Errorf("matcher drain = %+v, want messages and a rate", res.Matcher)
	}
	if res.Matcher.LiveFunnels != 10 || res.Matcher.LiveDrainPerSec <= 0 {
		t.Errorf("matcher drain with live funnels = %+v, want 10 funnels and a rate", res.Matcher)
	}
	if d := res.Dashboard; d == nil || len(d.Rows) != 3 || d.FactRows < 30*5 {
		t.Errorf("dashboard results %+v: want three timed requests over the seeded facts", d)
	} else {
		for _, row := range d.Rows {
			if row.Requests != 10 || row.P50Ms <= 0 || row.P99Ms < row.P50Ms || row.MaxMs < row.P99Ms || row.Bytes == 0 {
				t.Errorf("dashboard row %+v", row)
			}
		}
		if !strings.Contains(table.String(), "DASHBOARD (30 links, 5 days") {
			t.Errorf("the table has no DASHBOARD rows")
		}
	}
	if f := res.Funnel; f == nil {
		t.Error("no funnel results")
	} else {
		if !f.Identical || f.ResultRows == 0 || f.Installations == 0 {
			t.Errorf("funnel results: identical %v, %d rows, %d installations entered (%s)", f.Identical, f.ResultRows, f.Installations, f.Mismatch)
		}
		if len(f.Tapline) != 2 || f.Tapline[1].RawRows < 6000 || f.Tapline[0].RawRows < 1500 || f.Growth == nil {
			t.Errorf("funnel backfills = %+v, growth %+v: want 1x and 4x", f.Tapline, f.Growth)
		} else if g := f.Growth; g.RSSRatio <= 0 || g.RSSFlat != (g.RSSRatio <= g.RSSBound) || !strings.Contains(table.String(), "peak RSS at 4.") {
			t.Errorf("funnel growth %+v: want the peak RSS ratio, judged against its bound, in the table", g)
		}
		if f.Postgres.QuerySeconds <= 0 || f.DuckDB.QuerySeconds <= 0 || f.Postgres.RawRows != f.Data.RawRows || f.DuckDB.RawRows != f.Data.RawRows {
			t.Errorf("funnel competitors: postgres %+v, duckdb %+v, want %d raw rows each", f.Postgres, f.DuckDB, f.Data.RawRows)
		}
		if !strings.Contains(table.String(), "FUNNEL BACKFILL") || !strings.Contains(table.String(), "identical") {
			t.Errorf("the table has no FUNNEL rows")
		}
	}
	if res.Matcher.Probes == 0 || res.Matcher.E2EP50 <= 0 {
		t.Errorf("no tap-to-facts probes: %+v", res.Matcher)
	}
	var js bytes.Buffer
	if err := res.WriteJSON(&js); err != nil || !strings.Contains(js.String(), `"precision"`) {
		t.Errorf("results JSON: %v\n%s", err, js.String())
	}
}

// backfillInProcess runs a funnel backfill in the test process.
func backfillInProcess(ctx context.Context, dbURL, dataDir string, funnelID int64) (bench.BackfillRun, error) {
	quiet := slog.New(slog.DiscardHandler)
	db := postgres.NewDB(dbURL)
	db.Logger = quiet
	if err := db.Open(ctx); err != nil {
		return bench.BackfillRun{}, err
	}
	defer db.Close()
	store := postgres.NewFunnelStore(db)
	f, err := store.Funnel(ctx, funnelID)
	if err != nil {
		return bench.BackfillRun{}, err
	}
	raw := pebble.NewRawStore(filepath.Join(dataDir, "raw"))
	raw.Logger = quiet
	if err := raw.Open(); err != nil {
		return bench.BackfillRun{}, err
	}
	defer raw.Close()
	start := time.Now()
	b := funnels.Backfill{Raw: raw, Store: store, Workers: 2, Logger: quiet}
	_, err = b.Run(ctx, f.VersionID)
	return bench.BackfillRun{Seconds: time.Since(start).Seconds(), PeakKB: bench.PeakRSS(os.Getpid()), Via: "in-process"}, err
}
