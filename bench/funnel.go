package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"tapline"
	"tapline/funnels/reference"
	"tapline/loadgen"
	"tapline/postgres"
)

// The funnel backfill scenario. A raw store holding a 60-day workload of
// FunnelRows raw rows (events, hits and conversions) is counted in one
// 5-step funnel by tapline's backfill, as a separate process, and the same
// rows by one PostgreSQL query over plain tables and by DuckDB (the
// reference implementation, package funnels/reference); the three results
// must be identical. The backfill also runs at FunnelRows/FunnelGrowth
// rows first, for the growth ratio and the peak memory at both sizes.

// BackfillRun is what running one backfill to the end measured.
type BackfillRun struct {
	Seconds    float64 // from start to exit
	PeakKB     int64   // peak resident memory of the backfill's process
	CPUSeconds float64 // user + system time of the backfill's process
	Via        string  // what ran it
}

// BackfillRunner runs the backfill of funnel funnelID over the embedded
// raw store in dataDir/raw and the database at dbURL, until it is done.
type BackfillRunner func(ctx context.Context, dbURL, dataDir string, funnelID int64) (BackfillRun, error)

// FunnelResult is the funnel backfill scenario's outcome.
type FunnelResult struct {
	Definition tapline.FunnelDefinition `json:"definition"`
	Data       FunnelData               `json:"data"`
	// PrepareSeconds is the time to generate and store the raw rows of
	// both sizes (not part of any measurement).
	PrepareSeconds float64          `json:"prepare_seconds"`
	Tapline        []BackfillRow    `json:"tapline"`
	Postgres       FunnelQueryRow   `json:"postgres"`
	DuckDB         FunnelQueryRow   `json:"duckdb"`
	ResultRows     int              `json:"result_rows"`   // rows of fact_funnel_steps
	Installations  int64            `json:"installations"` // that entered the funnel
	Identical      bool             `json:"identical"`
	Mismatch       string           `json:"mismatch,omitempty"`
	Growth         *FunnelGrowthRow `json:"growth,omitempty"`
}

// BackfillRow is one timed tapline backfill.
type BackfillRow struct {
	Scale      int     `json:"scale"` // 1 for the smaller size, FunnelGrowth for the full one
	RawRows    int     `json:"raw_rows"`
	Seconds    float64 `json:"seconds"`
	PerSec     float64 `json:"raw_rows_per_second"`
	PeakKB     int64   `json:"peak_rss_kb"`
	CPUSeconds float64 `json:"cpu_seconds"`
	Via        string  `json:"via"`
}

// FunnelQueryRow is one competitor: loading the rows (not timed against
// tapline) and the timed query.
type FunnelQueryRow struct {
	RawRows      int     `json:"raw_rows"`
	LoadSeconds  float64 `json:"load_seconds"`
	QuerySeconds float64 `json:"query_seconds"`
	PerSec       float64 `json:"raw_rows_per_second"` // over the query
	CPUSeconds   float64 `json:"cpu_seconds"`         // of the query
	Note         string  `json:"note,omitempty"`
}

// FunnelGrowthRow compares the backfill at the two sizes.
type FunnelGrowthRow struct {
	RowsRatio float64 `json:"rows_ratio"`
	TimeRatio float64 `json:"time_ratio"`
	Bound     float64 `json:"bound"` // the time ratio allowed: 4.5x for 4x the rows
	Pass      bool    `json:"pass"`
	// RSSRatio is the peak RSS at the full size over the smaller one;
	// flat means at most RSSBound.
	RSSRatio float64 `json:"rss_ratio"`
	RSSBound float64 `json:"rss_bound"`
	RSSFlat  bool    `json:"rss_flat"`
}

// funnelRSSBound is how much more peak memory the backfill may take at the
// full size than at the smaller one and still be called flat in the data
// size: the same budget, give or take what the allocator holds at exit.
const funnelRSSBound = 1.1

// benchFunnel is the funnel the backfill benchmark counts: tap (from a
// paid source, on the app's links) → install → open → level 5 or more → a
// paying purchase, within 7 days, disqualified by an uninstall after the
// open and before the purchase, broken down by the attributed link.
func benchFunnel(links []int64) tapline.FunnelDefinition {
	return tapline.FunnelDefinition{
		Name: "bench: tap to paying purchase",
		Steps: []tapline.FunnelStep{
			{Kind: tapline.StepTap, Links: links, Filters: []tapline.FunnelFilter{{Param: "utm_source", Op: tapline.OpIn, Values: []string{"facebook", "google", "tiktok"}}}},
			{Kind: tapline.StepInstall},
			{Kind: tapline.StepEvent, Event: "open"},
			{Kind: tapline.StepEvent, Event: "level", Filters: []tapline.FunnelFilter{{Param: "n", Op: tapline.OpGte, Value: "5"}}},
			{Kind: tapline.StepEvent, Event: "purchase", Filters: []tapline.FunnelFilter{{Param: tapline.ParamRevenue, Op: tapline.OpGt, Value: "0"}}},
		},
		WindowSeconds: 7 * 24 * 3600,
		Order:         tapline.OrderOrdered,
		Exclusions:    []tapline.FunnelExclusion{{FunnelStep: tapline.FunnelStep{Kind: tapline.StepEvent, Event: "uninstall"}, After: 3, Before: 5}},
		Breakdown:     tapline.FunnelBreakdown{Kind: tapline.BreakdownLink},
	}
}

// funnelRun is the funnel backfill scenario.
func (r *Runner) funnelRun(ctx context.Context) error {
	c := &r.Config
	if c.FunnelRows <= 0 {
		return nil
	}
	if c.RunBackfill == nil {
		return fmt.Errorf("no backfill runner configured")
	}
	res := &FunnelResult{}
	r.res.Funnel = res
	s, err := r.seed(ctx, "funnel", appSpec{"funnel", links("fn"), loadgen.DefaultWindows()})
	if err != nil {
		return err
	}
	defer s.db.Close()
	app := s.apps["funnel"]
	ls, err := postgres.NewAccountService(s.db).LinksByApp(ctx, app.ID)
	if err != nil {
		return err
	}
	var linkIDs []int64
	for _, l := range ls {
		linkIDs = append(linkIDs, l.ID)
	}
	res.Definition = benchFunnel(linkIDs)
	w := &funnelWorkload{AppID: app.ID, Links: linkIDs, Seed: c.Seed, Rows: c.FunnelRows,
		End: time.Now().UTC().Truncate(time.Hour), Partitions: 8}
	dataDir := filepath.Join(c.WorkDir, "tapline-funnel")
	store := postgres.NewFunnelStore(s.db)
	factStore := postgres.NewFactStore(s.db)

	// The smaller size is a prefix of the full workload: the same
	// generator stopped at FunnelRows/FunnelGrowth rows. Its rows are
	// stored, backfilled, then the rest is added and the full size
	// backfilled, as a second funnel.
	sizes := []int{c.FunnelRows}
	if c.FunnelGrowth > 1 {
		sizes = []int{c.FunnelRows / c.FunnelGrowth, c.FunnelRows}
	}
	skip := 0
	var full *tapline.Funnel
	for i, rows := range sizes {
		sw := *w
		sw.Rows = rows
		t0 := time.Now()
		counts, pos, err := storeFunnelWorkload(ctx, filepath.Join(dataDir, "raw"), &sw, skip)
		if err != nil {
			return err
		}
		res.PrepareSeconds += time.Since(t0).Seconds()
		skip = counts.Installations
		r.log.Info("bench: funnel data stored", "raw_rows", counts.RawRows, "events", counts.Events, "hits", counts.Hits,
			"conversions", counts.Conversions, "installations", counts.Installations, "seconds", time.Since(t0).Seconds())
		def := res.Definition
		def.Name = fmt.Sprintf("%s (%d rows)", def.Name, rows)
		f, err := store.CreateFunnel(ctx, app.ID, def)
		if err != nil {
			return fmt.Errorf("create funnel: %w", err)
		}
		if err := factStore.ApplyFacts(ctx, "matcher", nil, nil, tapline.FlushRows{Handoffs: pos.handoff(f.VersionID)}); err != nil {
			return fmt.Errorf("store the funnel's handoff: %w", err)
		}
		run, err := c.RunBackfill(ctx, s.url, dataDir, f.ID)
		if err != nil {
			return fmt.Errorf("backfill %d rows: %w", rows, err)
		}
		if v, err := store.FunnelVersion(ctx, f.VersionID); err != nil {
			return err
		} else if v.Status != tapline.FunnelLive {
			return fmt.Errorf("backfill of %d rows ended with the version %s", rows, v.Status)
		}
		scale := 1
		if i == len(sizes)-1 {
			scale = max(c.FunnelGrowth, 1)
			res.Data = counts
			full = f
		}
		row := BackfillRow{Scale: scale, RawRows: counts.RawRows, Seconds: run.Seconds, PerSec: float64(counts.RawRows) / run.Seconds,
			PeakKB: run.PeakKB, CPUSeconds: run.CPUSeconds, Via: run.Via}
		res.Tapline = append(res.Tapline, row)
		r.res.Peaks = append(r.res.Peaks, RSS{Process: fmt.Sprintf("tapline funnel backfill (%d raw rows)", counts.RawRows), PeakKB: run.PeakKB})
		r.log.Info("bench: funnel backfill", "raw_rows", counts.RawRows, "seconds", run.Seconds, "peak_rss_mb", run.PeakKB/1024, "via", run.Via)
	}
	if n := len(res.Tapline); n == 2 {
		a, b := res.Tapline[0], res.Tapline[1]
		g := &FunnelGrowthRow{RowsRatio: float64(b.RawRows) / float64(a.RawRows), TimeRatio: b.Seconds / a.Seconds}
		g.Bound = 4.5 / 4 * g.RowsRatio
		g.Pass = g.TimeRatio <= g.Bound
		if a.PeakKB > 0 {
			g.RSSRatio, g.RSSBound = float64(b.PeakKB)/float64(a.PeakKB), funnelRSSBound
			g.RSSFlat = g.RSSRatio <= g.RSSBound
		}
		res.Growth = g
	}
	got, err := funnelResults(ctx, s.url, full.VersionID)
	if err != nil {
		return err
	}

	// PostgreSQL: the same rows in plain tables, one query.
	pgURL, err := r.freshDB(ctx, "funnelpg")
	if err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, pgURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	t0 := time.Now()
	var pos *positions
	err = loadPGFunnel(ctx, pool, func(fn func(*genInstall) error) error {
		var err error
		_, pos, err = w.generate(fn)
		return err
	}, func() []tapline.FunnelHandoff { return pos.handoff(0) })
	if err != nil {
		return fmt.Errorf("load postgres: %w", err)
	}
	res.Postgres = FunnelQueryRow{RawRows: res.Data.RawRows, LoadSeconds: time.Since(t0).Seconds()}
	r.log.Info("bench: funnel rows in postgres", "seconds", res.Postgres.LoadSeconds)
	cpu0 := postgresCPU()
	t0 = time.Now()
	pgRes, err := runPGFunnel(ctx, pool, &res.Definition, app.ID)
	if err != nil {
		return err
	}
	res.Postgres.QuerySeconds = time.Since(t0).Seconds()
	res.Postgres.CPUSeconds = postgresCPU() - cpu0
	res.Postgres.PerSec = float64(res.Data.RawRows) / res.Postgres.QuerySeconds
	res.Postgres.Note = "one query, window functions, plain tables, work_mem 512MB, JIT off"
	r.log.Info("bench: funnel postgres query", "seconds", res.Postgres.QuerySeconds)
	pool.Close()

	// DuckDB: the reference implementation over the same rows.
	duck, err := r.duckRun(ctx, w, &res.Definition)
	if err != nil {
		return err
	}
	res.DuckDB = duck.row
	r.log.Info("bench: funnel duckdb", "load_seconds", duck.row.LoadSeconds, "query_seconds", duck.row.QuerySeconds)

	res.ResultRows = len(got)
	for k, v := range got {
		if k.Step == 1 {
			res.Installations += v.Count
		}
	}
	var diffs []string
	if d := reference.Diff(got, duck.res); d != "" {
		diffs = append(diffs, "tapline vs duckdb: "+d)
	}
	if d := reference.Diff(pgRes, duck.res); d != "" {
		diffs = append(diffs, "postgres vs duckdb: "+d)
	}
	if len(got) == 0 {
		diffs = append(diffs, "nobody entered the funnel")
	}
	res.Identical = len(diffs) == 0
	if !res.Identical {
		res.Mismatch = fmt.Sprint(diffs)
		r.res.FunnelMismatch = true
		return fmt.Errorf("FUNNEL RESULTS DIFFER: %s", res.Mismatch)
	}
	return nil
}

// duckResult is the DuckDB run's timings and rows.
type duckResult struct {
	row FunnelQueryRow
	res map[reference.Key]reference.Value
}

// duckRun loads the workload into DuckDB (package reference) and times its
// query apart from the load.
func (r *Runner) duckRun(ctx context.Context, w *funnelWorkload, def *tapline.FunnelDefinition) (*duckResult, error) {
	t0 := time.Now()
	data, err := referenceData(w.AppID, func(fn func(*genInstall) error) error {
		_, _, err := w.generate(fn)
		return err
	})
	if err != nil {
		return nil, err
	}
	db, err := reference.Open()
	if err != nil {
		return nil, err
	}
	defer db.Close()
	// Every row is before the handoff, so DuckDB counts without one: the
	// same rows, without the reference's literal reading of positions (a
	// regular expression per row, a quarter of its query time), which a
	// DuckDB user would store as numbers.
	tables, err := reference.Load(ctx, db, data, nil)
	if err != nil {
		return nil, fmt.Errorf("load duckdb: %w", err)
	}
	defer tables.Close()
	out := &duckResult{row: FunnelQueryRow{LoadSeconds: time.Since(t0).Seconds()}}
	out.row.RawRows = len(data.Events) + len(data.Hits) + len(data.Conversions)
	data = nil // the tables hold the rows now
	cpu0 := selfCPU()
	t0 = time.Now()
	if out.res, err = tables.Query(ctx, def); err != nil {
		return nil, err
	}
	out.row.QuerySeconds = time.Since(t0).Seconds()
	out.row.CPUSeconds = selfCPU() - cpu0
	out.row.PerSec = float64(out.row.RawRows) / out.row.QuerySeconds
	out.row.Note = "package funnels/reference, in-process, every row (the handoff is past them all)"
	return out, nil
}

// referenceData collects installations into the reference's data.
func referenceData(appID int64, each func(fn func(*genInstall) error) error) (*reference.Data, error) {
	d := &reference.Data{AppID: appID}
	err := each(func(g *genInstall) error {
		d.Events = append(d.Events, g.Events...)
		d.Hits = append(d.Hits, g.Hits...)
		if g.Conversion != nil {
			d.Conversions = append(d.Conversions, g.Conversion)
		}
		return nil
	})
	return d, err
}

// funnelResults reads a version's rows of fact_funnel_steps.
func funnelResults(ctx context.Context, dbURL string, versionID int64) (map[reference.Key]reference.Value, error) {
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	rows, err := pool.Query(ctx, reference.FactQuery, versionID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return reference.ReadResults(rows)
}

// refHandoff is a handoff as the reference takes it.
func refHandoff(hs []tapline.FunnelHandoff) reference.Handoff {
	if hs == nil {
		return nil
	}
	out := reference.Handoff{}
	for _, h := range hs {
		out[fmt.Sprintf("%s/%d", h.Topic, h.Partition.Partition)] = h.Offset
	}
	return out
}

// selfCPU is this process's user and system time in seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return tvSeconds(ru.Utime) + tvSeconds(ru.Stime)
}

func tvSeconds(tv syscall.Timeval) float64 { return float64(tv.Sec) + float64(tv.Usec)/1e6 }

// postgresCPU sums the user and system time of the local postgres
// processes, with that of their exited children (parallel workers end
// before the query's rows are read), in seconds; 0 where /proc does not
// tell (another machine).
func postgresCPU() float64 {
	entries, _ := os.ReadDir("/proc")
	var ticks int64
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		st := string(b)
		open, close := strings.IndexByte(st, '('), strings.LastIndexByte(st, ')')
		if open < 0 || close < open || st[open+1:close] != "postgres" {
			continue
		}
		var f [20]int64
		var state string
		// state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime
		if _, err := fmt.Sscan(st[close+1:], &state, &f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &f[7], &f[8], &f[9], &f[10], &f[11], &f[12], &f[13]); err != nil {
			continue
		}
		ticks += f[10] + f[11] + f[12] + f[13]
	}
	return float64(ticks) / 100 // USER_HZ
}
