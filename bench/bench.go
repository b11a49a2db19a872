package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"tapline"
	"tapline/collector"
	"tapline/fingerprint"
	"tapline/loadgen"
	"tapline/pebble"
	"tapline/postgres"
)

// Starter starts a tapline all-in-one on a fresh database and data dir.
type Starter func(ctx context.Context, dbURL, dataDir string) (Process, error)

// Config sizes a benchmark run. NewConfig gives the `make bench` sizes.
type Config struct {
	DatabaseURL string // any database of the server; fresh ones are created beside it
	WorkDir     string // logs, data dirs; a temp dir when empty
	Keep        bool   // keep the fresh databases (and, in cmd/bench, WorkDir) to rerun a process by hand

	StartTapline Starter
	// StartReplay starts tapline on a data dir whose embedded bus, of one
	// partition per topic, was filled before: its matcher processes the
	// bus in receive order (-partitions 1 -matcher-ordered), deciding the
	// same way on every run. The accuracy check uses it.
	StartReplay Starter
	// StartCollector starts tapline's collector alone on the embedded bus
	// (-target collector): taps are recorded and nothing is matched. nil
	// leaves its row out.
	StartCollector  Starter
	StartTapstream1 func(ctx context.Context, dbURL string, links []string, fpWindow time.Duration) (Process, error)
	NginxBin        string // "" when nginx is unavailable
	// StartGo302 starts the bare Go net/http `302` server (bench/cmd/go302),
	// the floor of a redirect served by Go; nil leaves its row out.
	StartGo302 func(ctx context.Context) (Process, error)

	Seed        uint64
	Workers     int           // closed-loop and replay concurrency
	HammerFor   time.Duration // length of each closed-loop scenario
	Accuracy    int           // tapping devices of the accuracy run
	Compression float64       // simulated seconds per real second of the accuracy run
	Period      time.Duration // simulated span of taps in the accuracy run
	GrowthBase  int           // tapping devices at 1x
	Growth      []int         // scale factors of tapline
	Baseline    []int         // scale factors the baseline also runs
	Drain       int           // tapping devices whose records pre-fill the bus
	Probes      bool          // measure tap-to-facts latency during the accuracy run
	// LiveFunnels is how many live funnels the second matcher drain
	// counts (0: no second drain).
	LiveFunnels int
	// FunnelRows is how many raw rows (events, hits and conversions) the
	// funnel backfill scenario counts (0: none); FunnelGrowth divides it
	// for the smaller backfill of the growth ratio (below 2: none).
	FunnelRows   int
	FunnelGrowth int
	// The dashboard scenario: an app with DashboardLinks links (0: no
	// scenario) and DashboardDays days of facts; each request is timed
	// DashboardRequests times.
	DashboardLinks, DashboardDays, DashboardRequests int
	// StartDashboard starts "tapline run -target dashboard" on a database.
	StartDashboard Starter
	// RunBackfill runs a funnel backfill to its end (DefaultStarters: a
	// separate process).
	RunBackfill BackfillRunner
	// FunnelProfile, when set, makes DefaultStarters' backfills write CPU
	// profiles to FunnelProfile.<funnel id> (with the funnelbackfill helper).
	FunnelProfile string
	// TaplineProfile, when set, is a directory where DefaultStarters'
	// tapline processes write CPU profiles of their whole run, each named
	// after its data directory (tapline-drain.pprof, ...), but for the
	// main scenario's, profiled per phase: tapline-main-accuracy,
	// -redirect and -ingest.pprof.
	TaplineProfile string
	// AccuracyBaseline is the file the accuracy check compares with ("":
	// no comparison); AcceptAccuracy rewrites it with this run's numbers.
	AccuracyBaseline string
	AcceptAccuracy   bool
	// Only names the scenarios to run (main, nginx, tapstream1, growth,
	// drain, funnel, dashboard); empty runs them all.
	Only []string
	// Tweak, when set, adjusts every generated population (the smoke test
	// makes an easy one).
	Tweak func(*loadgen.Config)

	Logger *slog.Logger
}

// NewConfig returns the sizes `make bench` uses: about thirteen minutes on two
// cores.
func NewConfig() Config {
	return Config{
		Seed: 42, Workers: 32, HammerFor: 10 * time.Second,
		Accuracy: 10000, Compression: 3600, Period: 24 * time.Hour,
		GrowthBase: 2500, Growth: []int{1, 4, 16}, Baseline: []int{1, 4, 16},
		Drain: 20000, Probes: true, LiveFunnels: 10,
		FunnelRows: 5_000_000, FunnelGrowth: 4,
		DashboardLinks: 1000, DashboardDays: 90, DashboardRequests: 200,
	}
}

// Runner runs the scenarios and collects Results.
type Runner struct {
	Config Config
	admin  *pgxpool.Pool
	dbs    []string
	res    *Results
	log    *slog.Logger
}

// Run runs every scenario and returns the results; a scenario that fails
// is reported in Results.Errors and the others still run.
func (r *Runner) Run(ctx context.Context) (*Results, error) {
	c := &r.Config
	r.log = c.Logger
	if r.log == nil {
		r.log = slog.Default()
	}
	if c.WorkDir == "" {
		d, err := os.MkdirTemp("", "tapline-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		c.WorkDir = d
	}
	var err error
	if r.admin, err = pgxpool.New(ctx, c.DatabaseURL); err != nil {
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	defer r.admin.Close()
	if !c.Keep {
		defer r.dropDatabases()
	}
	r.res = &Results{Time: time.Now().UTC(), Machine: machine(), Config: *c}
	loadPeak := false

	steps := []struct {
		key, name string
		fn        func(context.Context) error
	}{
		{"main", "tapline: accuracy, latency, redirect, ingest", r.mainRun},
		{"check", "accuracy check", r.checkRun},
		{"nginx", "nginx redirect", r.nginxRun},
		{"go302", "bare Go net/http redirect", r.go302Run},
		{"collector", "tapline collector alone", r.collectorRun},
		{"tapstream1", "tapstream1", r.baselineRun},
		{"growth", "tapline growth", r.growthRun},
		{"drain", "matcher drain", r.drainRun},
		{"funnel", "funnel backfill", r.funnelRun},
		{"dashboard", "dashboard", r.dashboardRun},
	}
	for _, s := range steps {
		if ctx.Err() != nil {
			break
		}
		if len(c.Only) > 0 && !slices.Contains(c.Only, s.key) {
			continue
		}
		if s.key == "funnel" {
			// The funnel scenario holds its data (and DuckDB) in this
			// process: the load generator's peak is the one before it.
			r.res.Peaks = append(r.res.Peaks, RSS{Process: "bench (load generator)", PeakKB: PeakRSS(os.Getpid())})
			loadPeak = true
		}
		r.log.Info("bench: " + s.name)
		if err := s.fn(ctx); err != nil {
			r.log.Error("bench: "+s.name, "err", err)
			r.res.Errors = append(r.res.Errors, s.name+": "+err.Error())
		}
	}
	if !loadPeak {
		r.res.Peaks = append(r.res.Peaks, RSS{Process: "bench (load generator)", PeakKB: PeakRSS(os.Getpid())})
	} else {
		r.res.Peaks = append(r.res.Peaks, RSS{Process: "bench (with DuckDB and the funnel data)", PeakKB: PeakRSS(os.Getpid())})
	}
	r.res.finish()
	return r.res, ctx.Err()
}

func (r *Runner) generate(cfg loadgen.Config) (*loadgen.Workload, error) {
	if r.Config.Tweak != nil {
		r.Config.Tweak(&cfg)
	}
	return loadgen.Generate(cfg)
}

// freshDB creates an empty database beside DatabaseURL's and returns its
// URL; it is dropped when the run ends.
func (r *Runner) freshDB(ctx context.Context, prefix string) (string, error) {
	name := fmt.Sprintf("bench_%s_%d", prefix, rand.Uint32())
	if _, err := r.admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	r.dbs = append(r.dbs, name)
	u, err := url.Parse(r.Config.DatabaseURL)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	return u.String(), nil
}

func (r *Runner) dropDatabases() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	factMu.Lock()
	for u, pool := range factConns {
		pool.Close()
		delete(factConns, u)
	}
	factMu.Unlock()
	for _, n := range r.dbs {
		if _, err := r.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{n}.Sanitize()+" WITH (FORCE)"); err != nil {
			r.log.Warn("drop bench database", "db", n, "err", err)
		}
	}
}

// seeded is an account with its apps on a migrated database.
type seeded struct {
	url  string
	db   *postgres.DB
	apps map[string]*tapline.App
}

// appSpec describes an app the bench creates: its links and windows.
type appSpec struct {
	name    string
	links   []string
	windows loadgen.Windows
}

const (
	benchAccount  = "bench"
	benchEmail    = "bench@example.com"
	benchPassword = "bench-password-0123"
	appName       = "benchapp"
)

// seed migrates a fresh database and creates the bench account and apps.
func (r *Runner) seed(ctx context.Context, prefix string, specs ...appSpec) (*seeded, error) {
	u, err := r.freshDB(ctx, prefix)
	if err != nil {
		return nil, err
	}
	db := postgres.NewDB(u)
	db.Logger = slog.New(slog.DiscardHandler)
	if err := db.Open(ctx); err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	accts := postgres.NewAccountService(db)
	a := &tapline.Account{Name: benchAccount}
	if err := accts.CreateAccount(ctx, a, &tapline.User{Email: benchEmail}, benchPassword); err != nil {
		db.Close()
		return nil, err
	}
	s := &seeded{url: u, db: db, apps: map[string]*tapline.App{}}
	for i, sp := range specs {
		app := &tapline.App{
			AccountID: a.ID, Name: sp.name,
			SDKSecret: fmt.Sprintf("secret-%s-%04d-abcdef", sp.name, i), SDKKey: fmt.Sprintf("key-%s-%04d-abcdefgh", sp.name, i),
			IOSURL: "https://apps.apple.com/app/id1234567890", AndroidURL: "https://play.google.com/store/apps/details?id=com.example.loadgen",
			WebURL: "https://example.com/", ClickWindow: sp.windows.Click, FingerprintWindow: sp.windows.Fingerprint,
			LatenessHorizon: sp.windows.Lateness,
		}
		if err := accts.CreateApp(ctx, app); err != nil {
			db.Close()
			return nil, fmt.Errorf("create app %s: %w", sp.name, err)
		}
		for _, l := range sp.links {
			if err := accts.CreateLink(ctx, &tapline.Link{AppID: app.ID, Slug: l, Name: l}); err != nil {
				db.Close()
				return nil, fmt.Errorf("create link %s: %w", l, err)
			}
		}
		s.apps[sp.name] = app
	}
	return s, nil
}

func target(baseURL string, app *tapline.App) loadgen.Target {
	return loadgen.Target{BaseURL: baseURL, Account: benchAccount, Secret: app.SDKSecret, SDKKey: app.SDKKey, AppName: appName}
}

func links(prefix string) []string {
	return []string{prefix + "-spring", prefix + "-social", prefix + "-search", prefix + "-video"}
}

// accuracyPop is a population of the accuracy measure.
type accuracyPop struct {
	name string
	cfg  loadgen.Config
}

// accuracyPops generates the accuracy populations ("acc", the default,
// and "hard") and returns them, their workloads and the apps to seed for
// them, "other" (whose links some of their taps go to) included.
func (r *Runner) accuracyPops() ([]accuracyPop, []*loadgen.Workload, []appSpec, error) {
	c := &r.Config
	other := links("other")
	pops := []accuracyPop{
		{"acc", loadgen.NewConfig(c.Seed, c.Accuracy)},
		{"hard", loadgen.NewHardConfig(c.Seed+1, c.Accuracy/2)},
	}
	var ws []*loadgen.Workload
	for i := range pops {
		cfg := &pops[i].cfg
		cfg.Links = links(pops[i].name)
		cfg.OtherLinks = other
		cfg.Period = c.Period
		cfg.Tail = c.Period
		w, err := r.generate(*cfg)
		if err != nil {
			return nil, nil, nil, err
		}
		ws = append(ws, w)
	}
	win := pops[0].cfg.Windows.Scaled(c.Compression)
	specs := []appSpec{
		{"acc", pops[0].cfg.Links, win},
		{"hard", pops[1].cfg.Links, win},
		{"other", other, win},
	}
	return pops, ws, specs, nil
}

// mainRun: one tapline process. The paced accuracy replay (with probes
// measuring tap-to-facts latency), then the closed-loop redirect and
// ingest scenarios; after it stops, the attributions are read from its raw
// store and scored.
func (r *Runner) mainRun(ctx context.Context) error {
	c := &r.Config
	// Two populations replayed side by side on two apps: the default one
	// and a harder one loadgen's defaults are not tuned to, from another
	// seed (loadgen.NewHardConfig). Their devices tap a third app's links
	// too before installing organically.
	pops, ws, specs, err := r.accuracyPops()
	if err != nil {
		return err
	}
	s, err := r.seed(ctx, "main", append(specs,
		appSpec{"load", []string{"load"}, loadgen.DefaultWindows()},
		appSpec{"probe", []string{"probe"}, loadgen.DefaultWindows()})...)
	if err != nil {
		return err
	}
	defer s.db.Close()
	dataDir := filepath.Join(c.WorkDir, mainDataDir)
	p, err := c.StartTapline(ctx, s.url, dataDir)
	if err != nil {
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = p.Stop()
		}
	}()

	// Accuracy replay in compressed real time, probes alongside.
	acc := s.apps["acc"]
	probeCtx, stopProbes := context.WithCancel(ctx)
	probeDone := make(chan []time.Duration, 1)
	go func() {
		if !c.Probes {
			probeDone <- nil
			return
		}
		probeDone <- r.probe(probeCtx, p, s, s.apps["probe"])
	}()
	hard := s.apps["hard"]
	plays := make([]*loadgen.PlayResult, len(ws))
	var playErr [2]error
	var wg sync.WaitGroup
	done := r.profilePhase(ctx, p, "tapline-main-accuracy", time.Duration(float64(max(ws[0].Span(), ws[1].Span()))/c.Compression))
	for i, app := range []*tapline.App{acc, hard} {
		player := &loadgen.Player{Target: target(p.URL(), app), Workload: ws[i], Compression: c.Compression, Workers: c.Workers, Retries: 3}
		r.log.Info("bench: accuracy replay", "population", pops[i].name, "actions", len(ws[i].Timeline), "seconds", ws[i].Span().Seconds()/c.Compression)
		wg.Go(func() { plays[i], playErr[i] = player.Run(ctx) })
	}
	wg.Wait()
	done()
	stopProbes()
	probes := <-probeDone
	if err := errors.Join(playErr[:]...); err != nil {
		return err
	}
	play := plays[0]
	r.res.Replay = play
	if len(probes) > 0 {
		sum := loadgen.Summarize(probes, 0, play.Elapsed)
		r.res.Matcher.Probes = len(probes)
		r.res.Matcher.E2EP50, r.res.Matcher.E2EP99 = sum.P50, sum.P99
	}
	for i, app := range []*tapline.App{acc, hard} {
		// Taps on the other app's links count there, not here.
		taps, installs := 0, plays[i].Installs.Requests-plays[i].Installs.Errors
		for _, t := range ws[i].Taps {
			if !t.OtherApp {
				taps++
			}
		}
		taps -= plays[i].Taps.Errors // an upper bound of the failures among them
		if err := r.waitFacts(ctx, s, app.ID, int64(taps), int64(installs)); err != nil {
			return err
		}
	}

	// Closed-loop redirect and ingest.
	load := s.apps["load"]
	done = r.profilePhase(ctx, p, "tapline-main-redirect", c.HammerFor)
	r.res.Redirect = append(r.res.Redirect, r.hammerRedirect(ctx, p, "tapline", "load"))
	done()
	done = r.profilePhase(ctx, p, "tapline-main-ingest", 2*c.HammerFor)
	r.res.Ingest = append(r.res.Ingest, r.hammerIngest(ctx, p, "tapline", target(p.URL(), load))...)
	done()
	dropped := metric(p.URL(), "tapline_collector_hits_dropped_total")
	r.res.Redirect[len(r.res.Redirect)-1].Dropped = int64(dropped)

	r.res.Peaks = append(r.res.Peaks, RSS{Process: "tapline (accuracy + redirect + ingest)", PeakKB: peakRSS(p)})
	stopped = true
	if err := p.Stop(); err != nil {
		return err
	}

	attributions, err := readAttributions(ctx, dataDir, []*tapline.App{acc, hard}, ws)
	if err != nil {
		return err
	}
	for i, app := range []*tapline.App{acc, hard} {
		w, got := ws[i], attributions[i]
		pop := pops[i].name
		r.res.Accuracy = append(r.res.Accuracy,
			AccuracyRow{Population: pop, Method: "tapline", Threshold: app.FingerprintMinScore, Accuracy: loadgen.Score(w, got)},
			AccuracyRow{Population: pop, Method: "naive IP only", Accuracy: loadgen.Score(w, loadgen.NaiveIP(w))},
			AccuracyRow{Population: pop, Method: "naive IP + exact UA", Accuracy: loadgen.Score(w, loadgen.NaiveIPUA(w))},
		)
		r.res.Curves = append(r.res.Curves, Curve{Population: pop, Points: loadgen.Curve(w, got, curveThresholds)})
	}
	return nil
}

// readAttributions reads, from the raw store of the stopped tapline in
// dataDir, what it attributed the installs of each workload to, on its app.
func readAttributions(ctx context.Context, dataDir string, apps []*tapline.App, ws []*loadgen.Workload) ([]map[int]loadgen.Answer, error) {
	raw := pebble.NewRawStore(filepath.Join(dataDir, "raw"))
	if err := raw.Open(); err != nil {
		return nil, fmt.Errorf("open raw store: %w", err)
	}
	defer raw.Close()
	out := make([]map[int]loadgen.Answer, len(apps))
	for i, app := range apps {
		got, err := loadgen.Attributions(ctx, raw, app.ID, ws[i])
		if err != nil {
			return nil, err
		}
		out[i] = got
	}
	return out, nil
}

// curveThresholds are the fingerprint_min_score values the bench's
// precision/recall curve is drawn at.
var curveThresholds = []float64{-4, -2, -1, 0, 0.5, 1, 1.25, 1.5, 1.75, 2, 2.25, 2.5, 3, 4, 6}

// probe sends, one after another until ctx ends, a tap and the install
// from the same new iPhone on the probe app, and measures from the tap
// until the conversion is counted in the fact table.
func (r *Runner) probe(ctx context.Context, p Process, s *seeded, app *tapline.App) []time.Duration {
	client := loadgen.NewClient(2)
	t := target(p.URL(), app)
	var out []time.Duration
	for i := 0; ctx.Err() == nil; i++ {
		ip := fmt.Sprintf("172.%d.%d.%d", 16+(i>>16)&15, (i>>8)&255, i&255)
		d := &loadgen.Device{Platform: tapline.PlatformIOS, OSVersion: "17.4.1", Model: "iPhone15,2", Vendor: "Apple", Locale: "en_US",
			InstallID: fmt.Sprintf("probe-%d-%d", r.Config.Seed, i)}
		tap := &loadgen.Tap{N: i, Link: "probe", IP: ip,
			UserAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1"}
		t0 := time.Now()
		resp, err := client.Do(t.TapRequest(tap, d, true).WithContext(ctx))
		if err != nil {
			return out
		}
		resp.Body.Close()
		resp, err = client.Do(t.TapstreamRequest(d, &loadgen.SDKEvent{Kind: tapline.KindInstall, Time: time.Now(), IP: ip}).WithContext(ctx))
		if err != nil {
			return out
		}
		resp.Body.Close()
		for ctx.Err() == nil {
			n, err := countFacts(ctx, s.url, "fact_conversions", app.ID)
			if err == nil && n >= int64(i+1) {
				out = append(out, time.Since(t0))
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return out
}

var (
	factMu    sync.Mutex
	factConns = map[string]*pgxpool.Pool{}
)

// countFacts sums the count column of a fact table for an app.
func countFacts(ctx context.Context, dbURL, table string, appID int64) (int64, error) {
	factMu.Lock()
	pool := factConns[dbURL]
	if pool == nil {
		var err error
		if pool, err = pgxpool.New(context.Background(), dbURL); err != nil {
			factMu.Unlock()
			return 0, err
		}
		factConns[dbURL] = pool
	}
	factMu.Unlock()
	var n int64
	err := pool.QueryRow(ctx, "SELECT coalesce(sum(count), 0)::bigint FROM "+table+" WHERE app_id = $1", appID).Scan(&n)
	return n, err
}

// waitFacts waits until the fact tables count hits taps and installs of
// the app: the matcher has processed everything.
func (r *Runner) waitFacts(ctx context.Context, s *seeded, appID, hits, installs int64) error {
	deadline := time.Now().Add(10 * time.Minute)
	last := time.Now()
	for {
		h, err1 := countFacts(ctx, s.url, "fact_hits", appID)
		in, err2 := countFacts(ctx, s.url, "fact_installs", appID)
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		if h >= hits && in >= installs {
			return nil
		}
		if time.Since(last) > 5*time.Second {
			r.log.Info("bench: waiting for facts", "hits", h, "want_hits", hits, "installs", in, "want_installs", installs)
			last = time.Now()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("facts incomplete after 10 minutes: %d/%d hits, %d/%d installs", h, hits, in, installs)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// hammerRedirect taps link slug as fast as the workers can, with the
// browsers and addresses of a generated population.
func (r *Runner) hammerRedirect(ctx context.Context, p Process, name, slug string) RedirectRow {
	w, _ := loadgen.Generate(loadgen.NewConfig(r.Config.Seed+1, 5000))
	t := loadgen.Target{BaseURL: p.URL()}
	h := &loadgen.Hammer{Workers: r.Config.Workers, Duration: r.Config.HammerFor}
	cpu0 := cpuTime(p)
	sum := h.Run(ctx, func(worker, seq int) *http.Request {
		tap := w.Taps[(seq*r.Config.Workers+worker)%len(w.Taps)]
		tap.Link = slug
		return t.TapRequest(&tap, w.Devices[tap.Device], true)
	}, func(resp *http.Response) bool { return resp.StatusCode == http.StatusFound })
	cpu := cpuTime(p) - cpu0
	r.log.Info("bench: redirect", "target", name, "result", sum.String(), "cpu", cpu)
	return RedirectRow{Target: name, Summary: sum, CPUPerRequest: perRecord(cpu, sum.Requests-sum.Errors)}
}

// hammerIngest posts open events in the Tapstream form protocol, then
// JSON batches of ten, as fast as the workers can.
func (r *Runner) hammerIngest(ctx context.Context, p Process, name string, t loadgen.Target) []IngestRow {
	w, _ := loadgen.Generate(loadgen.NewConfig(r.Config.Seed+2, 5000))
	h := &loadgen.Hammer{Workers: r.Config.Workers, Duration: r.Config.HammerFor}
	ok := func(resp *http.Response) bool { return resp.StatusCode == http.StatusOK }
	var rows []IngestRow
	cpu0 := cpuTime(p)
	form := h.Run(ctx, func(worker, seq int) *http.Request {
		d := w.Devices[(seq*r.Config.Workers+worker)%len(w.Devices)]
		return t.TapstreamRequest(d, &loadgen.SDKEvent{Kind: tapline.KindOpen, Time: time.Now(), IP: "198.51.100.7"})
	}, ok)
	cpu1 := cpuTime(p)
	rows = append(rows, IngestRow{Target: name, Protocol: "tapstream form", EventsPerRequest: 1, Summary: form, EventsPerSec: form.Rate,
		CPUPerEvent: perRecord(cpu1-cpu0, form.Requests-form.Errors)})
	r.log.Info("bench: ingest tapstream", "target", name, "result", form.String())
	const batch = 10
	js := h.Run(ctx, func(worker, seq int) *http.Request {
		d := w.Devices[(seq*r.Config.Workers+worker)%len(w.Devices)]
		evs := make([]*loadgen.SDKEvent, batch)
		for i := range evs {
			evs[i] = &loadgen.SDKEvent{ID: fmt.Sprintf("ing-%d-%d-%d", worker, seq, i), Kind: tapline.KindOpen, Time: time.Now(), IP: "198.51.100.8"}
		}
		return t.JSONRequest(d, evs...)
	}, ok)
	rows = append(rows, IngestRow{Target: name, Protocol: "JSON batch of 10", EventsPerRequest: batch, Summary: js, EventsPerSec: js.Rate * batch,
		CPUPerEvent: perRecord(cpuTime(p)-cpu1, (js.Requests-js.Errors)*batch)})
	r.log.Info("bench: ingest json", "target", name, "result", js.String())
	return rows
}

// Targets of the reference redirect rows.
const (
	NginxTarget     = "nginx return 302"
	Go302Target     = "Go net/http return 302"
	CollectorTarget = "tapline collector alone (no matching)"
)

// collectorRun measures the redirect and the SDK ingest of tapline's
// collector alone, the hits and events written to the embedded bus and
// left there: what a redirect or an event costs before matching, which
// the all-in-one does on the same cores.
func (r *Runner) collectorRun(ctx context.Context) error {
	if r.Config.StartCollector == nil {
		return nil
	}
	s, err := r.seed(ctx, "coll", appSpec{"load", []string{"load"}, loadgen.DefaultWindows()})
	if err != nil {
		return err
	}
	defer s.db.Close()
	p, err := r.Config.StartCollector(ctx, s.url, filepath.Join(r.Config.WorkDir, "collector"))
	if err != nil {
		return fmt.Errorf("start the collector: %w", err)
	}
	return r.referenceRedirect(ctx, p, CollectorTarget, "load", "tapline collector alone", func(row *RedirectRow) {
		row.Dropped = int64(metric(p.URL(), "tapline_collector_hits_dropped_total"))
		// The SDK ingest of the collector alone: what an event costs
		// before the matching that the all-in-one does on the same cores.
		r.res.Ingest = append(r.res.Ingest, r.hammerIngest(ctx, p, CollectorTarget, target(p.URL(), s.apps["load"]))...)
	})
}

// referenceRedirect hammers the redirect of p, a reference server, on
// slug, records its row (which more may complete) and peak RSS under
// process, and stops p.
func (r *Runner) referenceRedirect(ctx context.Context, p Process, target, slug, process string, more func(*RedirectRow)) error {
	row := r.hammerRedirect(ctx, p, target, slug)
	if more != nil {
		more(&row)
	}
	r.res.Peaks = append(r.res.Peaks, RSS{Process: process, PeakKB: peakRSS(p)})
	r.res.Redirect = append(r.res.Redirect, row)
	return p.Stop()
}

// Go302Handler is the benchmark's floor for a redirect served by Go: a bare
// net/http mux whose every path under /l/ answers 302 to the App Store,
// recording nothing, and whose /healthz answers 200. tapline's redirect is
// measured against it and against nginx `return 302` with the same load
// generator, which separates what Go's HTTP server costs from what tapline
// adds to it.
func Go302Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok"))
	})
	mux.HandleFunc("GET /l/{slug}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://apps.apple.com/app/id1234567890", http.StatusFound)
	})
	return mux
}

// nginxRun measures nginx answering `return 302` with the same hammer.
func (r *Runner) nginxRun(ctx context.Context) error {
	if r.Config.NginxBin == "" {
		r.res.Redirect = append(r.res.Redirect, RedirectRow{Target: NginxTarget, Unavailable: "nginx unavailable"})
		return nil
	}
	p, err := startNginx(ctx, r.Config.NginxBin, r.Config.WorkDir)
	if err != nil {
		r.res.Redirect = append(r.res.Redirect, RedirectRow{Target: NginxTarget, Unavailable: "nginx unavailable: " + err.Error()})
		return nil
	}
	return r.referenceRedirect(ctx, p, NginxTarget, "x", "nginx (master + workers)", nil)
}

// go302Run measures a bare Go net/http server answering 302 with the same
// hammer: what any redirect served by Go's HTTP server costs before
// tapline records anything.
func (r *Runner) go302Run(ctx context.Context) error {
	if r.Config.StartGo302 == nil {
		return nil
	}
	p, err := r.Config.StartGo302(ctx)
	if err != nil {
		return fmt.Errorf("start go302: %w", err)
	}
	return r.referenceRedirect(ctx, p, Go302Target, "x", "go302 (bare net/http)", nil)
}

// growthWorkload is the throughput workload at a scale.
func (r *Runner) growthWorkload(scale int, prefix string) (*loadgen.Workload, error) {
	cfg := loadgen.NewConfig(r.Config.Seed+uint64(scale), r.Config.GrowthBase*scale)
	cfg.Links = links(prefix)
	return r.generate(cfg)
}

// baselineRun: the Tapstream 1.0 baseline: redirect and ingest hammers,
// then the throughput replays, each on a fresh database.
func (r *Runner) baselineRun(ctx context.Context) error {
	c := &r.Config
	if c.StartTapstream1 == nil {
		return nil
	}
	for i, scale := range c.Baseline {
		w, err := r.growthWorkload(scale, "gr")
		if err != nil {
			return err
		}
		u, err := r.freshDB(ctx, "ts1")
		if err != nil {
			return err
		}
		p, err := c.StartTapstream1(ctx, u, append(links("gr"), "load"), loadgen.DefaultWindows().Fingerprint)
		if err != nil {
			return err
		}
		t := loadgen.Target{BaseURL: p.URL(), Account: benchAccount, Secret: "ts1-secret-0123456789", SDKKey: "ts1-key-0123456789abc", AppName: appName}
		player := &loadgen.Player{Target: t, Workload: w, Workers: c.Workers, Retries: 3}
		play, err := player.Run(ctx)
		if err != nil {
			_ = p.Stop()
			return err
		}
		row := ThroughputRow{Target: "tapstream1", Scale: scale, Actions: play.Requests(), Seconds: play.Elapsed.Seconds(), PeakKB: peakRSS(p)}
		row.PerSec = float64(row.Actions) / row.Seconds
		r.res.Throughput = append(r.res.Throughput, row)
		r.log.Info("bench: throughput", "target", "tapstream1", "scale", scale, "actions", row.Actions, "seconds", row.Seconds)
		if i == 0 {
			r.res.Redirect = append(r.res.Redirect, r.hammerRedirect(ctx, p, "tapstream1", "load"))
			r.res.Ingest = append(r.res.Ingest, r.hammerIngest(ctx, p, "tapstream1", t)...)
		}
		r.res.Peaks = append(r.res.Peaks, RSS{Process: fmt.Sprintf("tapstream1 (%dx)", scale), PeakKB: peakRSS(p)})
		if err := p.Stop(); err != nil {
			return err
		}
	}
	return nil
}

// growthRun replays the throughput workload at each scale on a fresh
// tapline as fast as possible, timing until the facts are complete.
func (r *Runner) growthRun(ctx context.Context) error {
	c := &r.Config
	for _, scale := range c.Growth {
		w, err := r.growthWorkload(scale, "gr")
		if err != nil {
			return err
		}
		s, err := r.seed(ctx, "growth", appSpec{"growth", links("gr"), loadgen.DefaultWindows()})
		if err != nil {
			return err
		}
		p, err := c.StartTapline(ctx, s.url, filepath.Join(c.WorkDir, fmt.Sprintf("tapline-growth-%d", scale)))
		if err != nil {
			s.db.Close()
			return err
		}
		app := s.apps["growth"]
		player := &loadgen.Player{Target: target(p.URL(), app), Workload: w, Workers: c.Workers, Retries: 3}
		play, err := player.Run(ctx)
		if err == nil {
			err = r.waitFacts(ctx, s, app.ID, int64(play.Taps.Requests-play.Taps.Errors), int64(play.Installs.Requests-play.Installs.Errors))
		}
		if err != nil {
			_ = p.Stop()
			s.db.Close()
			return err
		}
		elapsed := time.Since(play.Start)
		row := ThroughputRow{Target: "tapline", Scale: scale, Actions: play.Requests(), Seconds: elapsed.Seconds(),
			AcceptSeconds: play.Elapsed.Seconds(), PeakKB: peakRSS(p)}
		row.PerSec = float64(row.Actions) / row.Seconds
		r.res.Throughput = append(r.res.Throughput, row)
		r.res.Peaks = append(r.res.Peaks, RSS{Process: fmt.Sprintf("tapline (%dx)", scale), PeakKB: row.PeakKB})
		r.log.Info("bench: throughput", "target", "tapline", "scale", scale, "actions", row.Actions, "seconds", row.Seconds)
		r.heapProfile(ctx, p, fmt.Sprintf("tapline-growth-%d", scale))
		err = p.Stop()
		s.db.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// drainRun publishes a workload's hits and events straight onto the
// embedded bus of a stopped node, then starts tapline and times the
// matcher until its stored offsets cover every message; then again with
// LiveFunnels live funnels, which the matcher counts as it goes.
func (r *Runner) drainRun(ctx context.Context) error {
	c := &r.Config
	if c.Drain <= 0 {
		return nil
	}
	cfg := loadgen.NewConfig(c.Seed+7, c.Drain)
	cfg.Links = links("dr")
	w, err := r.generate(cfg)
	if err != nil {
		return err
	}
	m := &r.res.Matcher
	// The floor: the same bus read and decoded, nothing else done.
	s, err := r.seed(ctx, "nullconsumer", appSpec{"drain", cfg.Links, loadgen.DefaultWindows()})
	if err != nil {
		return err
	}
	nullDir := filepath.Join(c.WorkDir, "null-consumer-bus")
	nn, err := fillBus(ctx, nullDir, s.apps["drain"], w)
	s.db.Close()
	if err != nil {
		return err
	}
	nel, ncpu, err := nullConsume(ctx, nullDir, nn)
	if err != nil {
		return fmt.Errorf("null consumer: %w", err)
	}
	m.NullMessages, m.NullPerSec, m.NullCPUPerMessage = nn, float64(nn)/nel.Seconds(), perRecord(ncpu, nn)
	r.log.Info("bench: null consumer", "messages", nn, "seconds", nel.Seconds())

	n, el, cpu, err := r.drainOnce(ctx, w, cfg.Links, 0)
	if err != nil {
		return err
	}
	m.DrainMessages, m.DrainSeconds, m.DrainPerSec = n, el.Seconds(), float64(n)/el.Seconds()
	m.DrainCPUPerMessage = perRecord(cpu, n)
	if c.LiveFunnels <= 0 {
		return nil
	}
	n, el, cpu, err = r.drainOnce(ctx, w, cfg.Links, c.LiveFunnels)
	if err != nil {
		return fmt.Errorf("with %d live funnels: %w", c.LiveFunnels, err)
	}
	m.LiveFunnels = c.LiveFunnels
	m.LiveDrainMessages, m.LiveDrainSeconds, m.LiveDrainPerSec = n, el.Seconds(), float64(n)/el.Seconds()
	m.LiveDrainCPU = perRecord(cpu, n)
	return nil
}

// drainOnce fills the bus of a fresh node with w, makes liveFunnels
// funnels live, starts tapline and waits until the matcher's offsets cover
// every message; it returns the messages, the time and tapline's CPU time
// over it.
func (r *Runner) drainOnce(ctx context.Context, w *loadgen.Workload, links []string, liveFunnels int) (int, time.Duration, time.Duration, error) {
	c := &r.Config
	s, err := r.seed(ctx, "drain", appSpec{"drain", links, loadgen.DefaultWindows()})
	if err != nil {
		return 0, 0, 0, err
	}
	defer s.db.Close()
	app := s.apps["drain"]
	name := "tapline-drain"
	if liveFunnels > 0 {
		name = fmt.Sprintf("tapline-drain-%d-funnels", liveFunnels)
	}
	dataDir := filepath.Join(c.WorkDir, name)
	n, err := fillBus(ctx, filepath.Join(dataDir, "bus"), app, w)
	if err != nil {
		return 0, 0, 0, err
	}
	var versions []int64
	if liveFunnels > 0 {
		if versions, err = makeLiveFunnels(ctx, s, app, dataDir, drainPartitions, liveFunnels); err != nil {
			return 0, 0, 0, err
		}
	}
	p, err := c.StartTapline(ctx, s.url, dataDir)
	if err != nil {
		return 0, 0, 0, err
	}
	defer p.Stop()
	start, cpu0 := time.Now(), cpuTime(p)
	if err := waitOffsets(ctx, s.url, n); err != nil {
		return 0, 0, 0, err
	}
	el, cpu := time.Since(start), cpuTime(p)-cpu0
	process := "tapline (matcher drain)"
	if liveFunnels > 0 {
		process = fmt.Sprintf("tapline (matcher drain, %d live funnels)", liveFunnels)
		pool, err := pgxpool.New(ctx, s.url)
		if err != nil {
			return 0, 0, 0, err
		}
		defer pool.Close()
		counted, err := countedInFunnels(ctx, pool, versions)
		if err != nil {
			return 0, 0, 0, err
		}
		if counted == 0 {
			return 0, 0, 0, fmt.Errorf("the live funnels counted nobody")
		}
	}
	r.res.Peaks = append(r.res.Peaks, RSS{Process: process, PeakKB: peakRSS(p)})
	r.log.Info("bench: drain", "messages", n, "seconds", el.Seconds(), "live_funnels", liveFunnels)
	return n, el, cpu, nil
}

// mainDataDir is the data directory of the main scenario's tapline.
const mainDataDir = "tapline-main"

// profilePhase, when the bench profiles tapline (TaplineProfile), takes
// a CPU profile of p for the next d, the length of the phase about to
// start, into TaplineProfile/name.pprof; the returned function waits for
// it. Otherwise it does nothing.
func (r *Runner) profilePhase(ctx context.Context, p Process, name string, d time.Duration) (wait func()) {
	ep, ok := p.(*execProc)
	if r.Config.TaplineProfile == "" || !ok || ep.debugURL == "" {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		secs := max(int(d.Round(time.Second)/time.Second), 1)
		r.saveProfile(ctx, ep, fmt.Sprintf("profile?seconds=%d", secs), name)
	}()
	return func() { <-done }
}

// heapProfile, when the bench profiles tapline, saves p's heap profile
// (what is live now, and what was allocated over its run) as
// TaplineProfile/name.heap.pprof.
func (r *Runner) heapProfile(ctx context.Context, p Process, name string) {
	if ep, ok := p.(*execProc); ok && r.Config.TaplineProfile != "" && ep.debugURL != "" {
		r.saveProfile(ctx, ep, "heap?gc=1", name+".heap")
	}
}

// saveProfile saves /debug/pprof/<query> of p as TaplineProfile/name.pprof.
func (r *Runner) saveProfile(ctx context.Context, p *execProc, query, name string) {
	err := func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.debugURL+"/debug/pprof/"+query, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s", resp.Status)
		}
		f, err := os.Create(filepath.Join(r.Config.TaplineProfile, name+".pprof"))
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, resp.Body); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}()
	if err != nil {
		r.log.Warn("bench: profile", "name", name, "err", err)
	}
}

// drainPartitions is the embedded bus's partitions per topic in the drain
// runs (fillBus, and tapline's default).
const drainPartitions = 8

// fillBus writes the hits and events of w onto a pebble bus at dir, as
// the collector would have (with link ids unknown to the matcher left 0),
// and returns how many messages it wrote.
func fillBus(ctx context.Context, dir string, app *tapline.App, w *loadgen.Workload) (int, error) {
	bus := pebble.NewBus(dir)
	bus.NumPartitions = drainPartitions
	bus.Logger = slog.New(slog.DiscardHandler)
	if err := bus.Open(); err != nil {
		return 0, fmt.Errorf("open bus: %w", err)
	}
	defer bus.Close()
	fp := fingerprint.New()
	now := time.Now().UTC().Add(-time.Duration(float64(w.Span()) / 3600)) // an hour of simulation per second back
	at := func(d time.Duration) time.Time { return now.Add(time.Duration(float64(d) / 3600)) }
	var msgs []tapline.Message
	n := 0
	flush := func() error {
		if len(msgs) == 0 {
			return nil
		}
		err := bus.Publish(ctx, msgs...)
		n += len(msgs)
		msgs = msgs[:0]
		return err
	}
	for _, a := range w.Timeline {
		d := w.Devices[a.Dev]
		switch a.Kind {
		case loadgen.ActTap:
			t := w.Taps[a.Index]
			h := &tapline.Hit{ID: fmt.Sprintf("dr%024d", t.N), Time: at(t.At), AppID: app.ID, IP: t.IP, UserAgent: t.UserAgent,
				Params: map[string]string{loadgen.TapParam: fmt.Sprint(t.N)}}
			fp.Hit(h)
			msg, err := collector.HitMessage(tapline.TopicHits, h, true) // as on the embedded bus
			if err != nil {
				return n, err
			}
			msgs = append(msgs, msg)
		default:
			e := &tapline.Event{AppID: app.ID, InstallID: d.InstallID, Protocol: "v1",
				Device: tapline.Device{Platform: d.Platform, OSVersion: d.OSVersion, Model: d.Model, Vendor: d.Vendor, Locale: d.Locale}}
			if a.Kind == loadgen.ActInstall {
				in := w.Installs[a.Index]
				e.ID, e.Name, e.Kind, e.Time, e.IP = fmt.Sprintf("dri%d", in.N), "install", tapline.KindInstall, at(in.At), in.IP
			} else {
				ev := w.Events[a.Index]
				e.ID, e.Name, e.Kind, e.Time, e.IP = fmt.Sprintf("dre%d", ev.N), string(ev.Kind), ev.Kind, at(ev.At), ev.IP
				if ev.Kind == tapline.KindPurchase {
					e.Revenue = &tapline.Revenue{Micros: ev.PriceCents * 10_000, Currency: ev.Currency}
				}
			}
			e.ReceivedAt = e.Time
			fp.Event(e)
			msg, err := collector.EventMessage(tapline.TopicEvents, e, true)
			if err != nil {
				return n, err
			}
			msgs = append(msgs, msg)
		}
		if len(msgs) >= 1000 {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	return n, flush()
}

// scaledSkew is the matcher's one-minute clock-skew tolerance compressed
// like the replay's time, so that it stays a minute of simulated time.
func scaledSkew(compression float64) time.Duration {
	if compression <= 1 {
		return time.Minute
	}
	return max(time.Duration(float64(time.Minute)/compression), time.Millisecond)
}

// DefaultStarters fill in the process starters of cfg for the binaries in
// binDir (tapline, tapstream1) and nginx from PATH or /usr/sbin.
func DefaultStarters(cfg *Config, binDir string) {
	workDir := func() string { return cfg.WorkDir }
	var startTapline func(ctx context.Context, dbURL, dataDir string, extra ...string) (*execProc, error)
	cfg.StartTapline = func(ctx context.Context, dbURL, dataDir string) (Process, error) {
		return startTapline(ctx, dbURL, dataDir)
	}
	cfg.StartReplay = func(ctx context.Context, dbURL, dataDir string) (Process, error) {
		return startTapline(ctx, dbURL, dataDir, "-partitions", "1", "-matcher-ordered")
	}
	cfg.StartCollector = func(ctx context.Context, dbURL, dataDir string) (Process, error) {
		return startTapline(ctx, dbURL, dataDir, "-target", "collector")
	}
	startTapline = func(ctx context.Context, dbURL, dataDir string, extra ...string) (*execProc, error) {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		dash, err := freeAddr()
		if err != nil {
			return nil, err
		}
		profile := append([]string{"run"}, extra...)
		debugURL := ""
		if cfg.TaplineProfile != "" {
			debug, err := freeAddr()
			if err != nil {
				return nil, err
			}
			debugURL = "http://" + debug
			profile = append(profile, "-debug-addr", debug)
			if filepath.Base(dataDir) != mainDataDir {
				// The main scenario's process is profiled per phase
				// (profilePhase), and one profile runs at a time.
				profile = append(profile, "-cpu-profile", filepath.Join(cfg.TaplineProfile, filepath.Base(dataDir)+".pprof"))
			}
		}
		p, err := startExec(ctx, "tapline-"+filepath.Base(dataDir), workDir(), "http://"+addr, "/healthz",
			filepath.Join(binDir, "tapline"), append(profile, "-database-url", dbURL, "-data-dir", dataDir,
				"-collector-addr", addr, "-dashboard-addr", dash, "-trusted-proxies", "127.0.0.1/32", "-log-level", "warn",
				"-matcher-clock-skew", scaledSkew(cfg.Compression).String(),
				// Time runs Compression times faster: so do an address's taps,
				// and the replay sends a compressed second's taps at once.
				"-tap-rate", strconv.FormatFloat(collector.DefaultTapRate*max(cfg.Compression, 1), 'g', -1, 64),
				"-tap-burst", strconv.Itoa(int(float64(collector.DefaultTapBurst)*max(cfg.Compression, 1))))...)
		if err != nil {
			return nil, err
		}
		p.debugURL = debugURL
		return p, nil
	}
	cfg.StartDashboard = func(ctx context.Context, dbURL, dataDir string) (Process, error) {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		return startExec(ctx, "tapline-"+filepath.Base(dataDir), workDir(), "http://"+addr, "/healthz",
			filepath.Join(binDir, "tapline"), "run", "-target", "dashboard", "-database-url", dbURL, "-data-dir", dataDir,
			"-dashboard-addr", addr, "-log-level", "warn")
	}
	cfg.StartTapstream1 = func(ctx context.Context, dbURL string, links []string, fpWindow time.Duration) (Process, error) {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		return startExec(ctx, "tapstream1-"+strings.ReplaceAll(addr, ":", "-"), workDir(), "http://"+addr, "/healthz",
			filepath.Join(binDir, "tapstream1"), "-addr", addr, "-database-url", dbURL, "-links", strings.Join(links, ","),
			"-account", benchAccount, "-secret", "ts1-secret-0123456789", "-sdk-key", "ts1-key-0123456789abc",
			"-fingerprint-window", fpWindow.String())
	}
	cfg.StartGo302 = func(ctx context.Context) (Process, error) {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		return startExec(ctx, "go302", workDir(), "http://"+addr, "/healthz", filepath.Join(binDir, "go302"), "-addr", addr)
	}
	cfg.RunBackfill = execBackfill(binDir, workDir, cfg.FunnelProfile)
	for _, p := range []string{"nginx", "/usr/sbin/nginx"} {
		if path, err := lookPath(p); err == nil {
			cfg.NginxBin = path
			break
		}
	}
}
