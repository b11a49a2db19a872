package soak

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"tapline"
	"tapline/bench"
	"tapline/loadgen"
	"tapline/postgres"
)

// Config is one soak run. Zero fields take the defaults Run documents.
type Config struct {
	Bin         string // the tapline binary
	DatabaseURL string // any database of the server; the soak creates a fresh one beside it and drops it after
	WorkDir     string // tapline's data dir (WorkDir/data), its log and the samples; required

	Duration time.Duration // how long the load runs (default 30m)
	Interval time.Duration // time between samples (default 1m)
	// Rate is the load in requests a second (taps and SDK requests
	// together); required.
	Rate float64
	// Retention is the app's raw retention (default Duration/6, at least
	// 5s), ExpireEvery how often the matcher expires raw rows (default
	// Interval, passed as -matcher-expire-every): rows expire during the
	// soak.
	Retention   time.Duration
	ExpireEvery time.Duration
	// BusRetention is the embedded bus's retention (-bus-retention,
	// default and least 1h): its size can level off only in a run longer
	// than twice it.
	BusRetention time.Duration

	Devices int    // tapping devices per generated round (default 5000)
	Workers int    // concurrent load workers (default 32)
	Seed    uint64 // first round's seed; each round adds one
	Probes  int    // installations the expiry probe looks up per sample, old and young each (default 20)

	Samples io.Writer // CSV of the samples, written as they are taken; nil for none
	Limits  Limits    // the verdict's bounds (zero: DefaultLimits)
	Logger  *slog.Logger
}

// Result is a finished soak.
type Result struct {
	Samples []Sample `json:"samples"`
	Verdict Verdict  `json:"verdict"`
	Rate    float64  `json:"rate"`
	// Retention and BusRetention are the app's raw retention and the
	// bus's, as run.
	Retention    time.Duration `json:"retention_ns"`
	BusRetention time.Duration `json:"bus_retention_ns"`
	Rounds       int           `json:"rounds"`
}

const (
	soakAccount  = "soak"
	soakAppName  = "soakapp"
	soakPassword = "soak-password-0123"
)

func (c *Config) setDefaults() error {
	if c.Bin == "" || c.DatabaseURL == "" || c.WorkDir == "" {
		return fmt.Errorf("soak: Bin, DatabaseURL and WorkDir are required")
	}
	if c.Rate <= 0 {
		return fmt.Errorf("soak: Rate must be positive, not %g", c.Rate)
	}
	if c.Duration == 0 {
		c.Duration = 30 * time.Minute
	}
	if c.Interval == 0 {
		c.Interval = time.Minute
	}
	if c.Duration <= 0 || c.Interval <= 0 || c.Interval > c.Duration {
		return fmt.Errorf("soak: Duration (%s) and Interval (%s) must be positive and Interval at most Duration", c.Duration, c.Interval)
	}
	if c.Retention == 0 {
		c.Retention = max(c.Duration/6, 5*time.Second).Round(time.Second)
	}
	if c.ExpireEvery == 0 {
		c.ExpireEvery = max(c.Interval, time.Second)
	}
	if c.BusRetention == 0 {
		c.BusRetention = time.Hour
	}
	if c.Retention < time.Second || c.ExpireEvery < time.Second {
		return fmt.Errorf("soak: Retention (%s) and ExpireEvery (%s) must be at least a second", c.Retention, c.ExpireEvery)
	}
	c.Devices = cmpOr(c.Devices, 5000)
	c.Workers = cmpOr(c.Workers, 32)
	c.Probes = cmpOr(c.Probes, 20)
	if c.Limits == (Limits{}) {
		c.Limits = DefaultLimits()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

func cmpOr(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// Run soaks tapline: it seeds a fresh database with an account, an app
// whose raw retention is Retention and its links, starts Bin as
// "tapline run" on a private data dir, plays generated workloads at Rate
// for Duration while sampling every Interval, stops tapline and judges
// the samples. A verdict that fails is not an error; Run's error is for a
// soak that could not run.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		return nil, fmt.Errorf("soak: %w", err)
	}
	dbURL, drop, err := freshDatabase(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	defer drop()
	app, linkSlugs, err := seed(ctx, dbURL, cfg.Retention)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return nil, fmt.Errorf("connect to the soak database: %w", err)
	}
	defer pool.Close()

	p, debugURL, err := startTapline(ctx, &cfg, dbURL)
	if err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = p.Stop()
		}
	}()
	pid := p.PIDs()[0]
	log.Info("soak: tapline started", "pid", pid, "url", p.URL(), "rate", cfg.Rate, "duration", cfg.Duration,
		"interval", cfg.Interval, "retention", cfg.Retention, "expire_every", cfg.ExpireEvery)

	target := loadgen.Target{BaseURL: p.URL(), Account: soakAccount, Secret: app.SDKSecret, SDKKey: app.SDKKey, AppName: soakAppName}
	ld := &load{cfg: &cfg, target: target, links: linkSlugs}
	loadCtx, stopLoad := context.WithTimeout(ctx, cfg.Duration)
	defer stopLoad()
	start := time.Now()
	loadDone := make(chan error, 1)
	go func() { loadDone <- ld.run(loadCtx, start) }()

	sm := &sampler{cfg: &cfg, pid: pid, url: p.URL(), dataDir: filepath.Join(cfg.WorkDir, "data"), pool: pool,
		client: &http.Client{Timeout: 30 * time.Second}, load: ld, secret: app.SDKSecret, start: start, debugURL: debugURL}
	if cfg.Samples != nil {
		if sm.csv, err = NewCSVWriter(cfg.Samples); err != nil {
			return nil, err
		}
	}
	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	var loadErr error
	sampleErr := sm.take(ctx)
sampling:
	for sampleErr == nil {
		select {
		case <-tick.C:
			sampleErr = sm.take(ctx)
		case loadErr = <-loadDone:
			break sampling
		case <-ctx.Done():
			sampleErr = ctx.Err()
		}
	}
	stopLoad()
	if sampleErr != nil {
		<-loadDone
		return nil, sampleErr
	}
	if loadErr != nil && !errors.Is(loadErr, context.DeadlineExceeded) {
		return nil, fmt.Errorf("soak load: %w", loadErr)
	}
	if err := sm.take(ctx); err != nil { // the last sample, at the end of the load
		return nil, err
	}
	if err := sm.heapProfile(ctx, "heap-end.pb.gz"); err != nil {
		return nil, err
	}
	stopped = true
	if err := p.Stop(); err != nil {
		return nil, err
	}
	res := &Result{Samples: sm.samples, Rate: cfg.Rate, Retention: cfg.Retention, BusRetention: cfg.BusRetention, Rounds: ld.rounds}
	res.Verdict = Judge(sm.samples, cfg.Limits, cfg.Rate, cfg.Duration >= 2*cfg.BusRetention)
	return res, nil
}

// freshDatabase creates an empty database beside admin's and returns its
// URL and a function dropping it.
func freshDatabase(ctx context.Context, admin string) (string, func(), error) {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", nil, fmt.Errorf("connect to postgres: %w", err)
	}
	name := fmt.Sprintf("soak_%d", rand.Uint32())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		conn.Close(ctx)
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	u, err := url.Parse(admin)
	if err != nil {
		conn.Close(ctx)
		return "", nil, fmt.Errorf("parse database url: %w", err)
	}
	u.Path = "/" + name
	drop := func() {
		dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := conn.Exec(dctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			slog.Warn("soak: drop database", "db", name, "err", err)
		}
		conn.Close(dctx)
	}
	return u.String(), drop, nil
}

// seed migrates the database and creates the soak's account, its app
// (raw retention as given, default windows) and four links.
func seed(ctx context.Context, dbURL string, retention time.Duration) (*tapline.App, []string, error) {
	db := postgres.NewDB(dbURL)
	db.Logger = slog.New(slog.DiscardHandler)
	if err := db.Open(ctx); err != nil {
		return nil, nil, fmt.Errorf("open soak database: %w", err)
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		return nil, nil, fmt.Errorf("migrate soak database: %w", err)
	}
	accts := postgres.NewAccountService(db)
	a := &tapline.Account{Name: soakAccount}
	if err := accts.CreateAccount(ctx, a, &tapline.User{Email: "soak@example.com"}, soakPassword); err != nil {
		return nil, nil, fmt.Errorf("create soak account: %w", err)
	}
	app := &tapline.App{
		AccountID: a.ID, Name: "soak",
		SDKSecret: "secret-soak-0000-abcdef", SDKKey: "key-soak-0000-abcdefgh",
		IOSURL: "https://apps.apple.com/app/id1234567890", AndroidURL: "https://play.google.com/store/apps/details?id=com.example.loadgen",
		WebURL: "https://example.com/", Retention: retention,
	}
	if err := accts.CreateApp(ctx, app); err != nil {
		return nil, nil, fmt.Errorf("create soak app: %w", err)
	}
	slugs := []string{"soak-spring", "soak-social", "soak-search", "soak-video"}
	for _, s := range slugs {
		if err := accts.CreateLink(ctx, &tapline.Link{AppID: app.ID, Slug: s, Name: s}); err != nil {
			return nil, nil, fmt.Errorf("create link %s: %w", s, err)
		}
	}
	return app, slugs, nil
}

// startTapline starts "tapline run" on WorkDir/data with free ports and
// returns it with the base URL of its /debug/pprof/.
func startTapline(ctx context.Context, cfg *Config, dbURL string) (bench.Process, string, error) {
	var addrs [3]string
	for i := range addrs {
		a, err := bench.FreeAddr()
		if err != nil {
			return nil, "", fmt.Errorf("free address: %w", err)
		}
		addrs[i] = a
	}
	addr, dash, debug := addrs[0], addrs[1], addrs[2]
	p, err := bench.StartExec(ctx, "tapline-soak", cfg.WorkDir, "http://"+addr, "/healthz", cfg.Bin,
		"run", "-database-url", dbURL, "-data-dir", filepath.Join(cfg.WorkDir, "data"),
		"-collector-addr", addr, "-dashboard-addr", dash, "-debug-addr", debug,
		"-trusted-proxies", "127.0.0.1/32", "-log-level", "warn",
		"-matcher-expire-every", cfg.ExpireEvery.String(), "-bus-retention", cfg.BusRetention.String(),
		// A generated day of taps is played in minutes: an address's taps
		// come faster than a person's, and must still count as taps.
		"-tap-rate", "10000", "-tap-burst", "100000")
	return p, "http://" + debug, err
}

// load plays one generated workload after another at a steady rate.
type load struct {
	cfg    *Config
	target loadgen.Target
	links  []string

	sent, failed atomic.Int64
	rounds       int

	mu       sync.Mutex
	installs []sentInstall // in the order sent
}

// sentInstall is an installation the load sent, for the expiry probe.
type sentInstall struct {
	at        time.Time
	installID string
}

// probeEvery keeps one installation in this many for the expiry probe.
const probeEvery = 10

// run plays rounds until ctx is done; the next round is generated while
// one plays. Each round's timeline keeps its order (a device's taps before
// its install, the install before its events) but is spread evenly at
// Rate, so the load is steady.
func (l *load) run(ctx context.Context, start time.Time) error {
	gen := func(round int) (*loadgen.Workload, error) {
		c := loadgen.NewConfig(l.cfg.Seed+uint64(round), l.cfg.Devices)
		c.Links = l.links
		w, err := loadgen.Generate(c)
		if err != nil {
			return nil, fmt.Errorf("generate round %d: %w", round, err)
		}
		step := time.Duration(float64(time.Second) / l.cfg.Rate)
		for i := range w.Timeline {
			w.Timeline[i].At = time.Duration(i) * step
		}
		return w, nil
	}
	next := make(chan *loadgen.Workload, 1)
	genErr := make(chan error, 1)
	go func() {
		defer close(next)
		for round := 0; ctx.Err() == nil; round++ {
			w, err := gen(round)
			if err != nil {
				genErr <- err
				return
			}
			select {
			case next <- w:
			case <-ctx.Done():
				return
			}
		}
	}()
	client := loadgen.NewClient(l.cfg.Workers)
	client.Transport = &countingTransport{rt: cmpTransport(client.Transport), sent: &l.sent, failed: &l.failed}
	for w := range next {
		roundStart := time.Now()
		for _, a := range w.Timeline {
			if a.Kind == loadgen.ActInstall && a.Index%probeEvery == 0 {
				l.mu.Lock()
				l.installs = append(l.installs, sentInstall{at: roundStart.Add(a.At), installID: w.Devices[a.Dev].InstallID})
				l.mu.Unlock()
			}
		}
		pl := &loadgen.Player{Target: l.target, Workload: w, Compression: 1, Workers: l.cfg.Workers, Client: client, Retries: 3}
		if _, err := pl.Run(ctx); err != nil {
			return err
		}
		l.rounds++
		l.cfg.Logger.Debug("soak: round", "round", l.rounds, "actions", len(w.Timeline), "seconds", time.Since(roundStart).Seconds())
	}
	select {
	case err := <-genErr:
		return err
	default:
		return ctx.Err()
	}
}

// countingTransport counts the requests the load sent (retries
// included) and those that failed (no response, or a 5xx); a request
// cut off by the end of the load counts as neither.
type countingTransport struct {
	rt           http.RoundTripper
	sent, failed *atomic.Int64
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.rt.RoundTrip(req)
	if req.Context().Err() != nil {
		return resp, err // cut off by the end of the soak: neither sent nor failed
	}
	c.sent.Add(1)
	if err != nil || resp.StatusCode >= 500 {
		c.failed.Add(1)
	}
	return resp, err
}

func cmpTransport(rt http.RoundTripper) http.RoundTripper {
	if rt == nil {
		return http.DefaultTransport
	}
	return rt
}

// probeSet returns up to n installations sent in [from, to), spread
// evenly over them.
func (l *load) probeSet(from, to time.Time, n int) []sentInstall {
	l.mu.Lock()
	defer l.mu.Unlock()
	lo := sort.Search(len(l.installs), func(i int) bool { return !l.installs[i].at.Before(from) })
	hi := sort.Search(len(l.installs), func(i int) bool { return !l.installs[i].at.Before(to) })
	if hi <= lo {
		return nil
	}
	var out []sentInstall
	step := max(float64(hi-lo)/float64(n), 1)
	for x := float64(lo); int(x) < hi && len(out) < n; x += step {
		out = append(out, l.installs[int(x)])
	}
	return out
}

// sampler takes the samples.
type sampler struct {
	cfg     *Config
	pid     int
	url     string
	dataDir string
	pool    *pgxpool.Pool
	client  *http.Client
	load    *load
	secret  string
	start   time.Time

	debugURL string // tapline's /debug/pprof/ base
	halfHeap bool   // the heap profile at half time was saved

	csv     *CSVWriter
	samples []Sample
}

// heapProfile saves tapline's heap profile (after a garbage collection)
// as WorkDir/name, for go tool pprof.
func (s *sampler) heapProfile(ctx context.Context, name string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.debugURL+"/debug/pprof/heap?gc=1", nil)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("heap profile: %s", resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	path := filepath.Join(s.cfg.WorkDir, name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	s.cfg.Logger.Info("soak: heap profile", "path", path)
	return nil
}

// take measures every quantity once and records the sample.
func (s *sampler) take(ctx context.Context) error {
	now := time.Now()
	sm := Sample{At: now.UTC(), Elapsed: now.Sub(s.start).Seconds(), Sent: s.load.sent.Load(), Failed: s.load.failed.Load()}
	sm.Scheduled = int64(min(now.Sub(s.start), s.cfg.Duration).Seconds() * s.cfg.Rate)
	var err error
	if sm.RSSKB, sm.RSSAnonKB, sm.RSSFileKB, err = procRSS(s.pid); err != nil {
		return err
	}
	if sm.OpenFiles, sm.TableFiles, sm.Sockets, err = openFiles(s.pid); err != nil {
		return err
	}
	m, err := scrape(ctx, s.client, s.url)
	if err != nil {
		return err
	}
	sm.Goroutines = int(m["go_goroutines"])
	sm.HeapInuse, sm.GoSys = int64(m["go_memstats_heap_inuse_bytes"]), int64(m["go_memstats_sys_bytes"])
	sm.CacheBytes, sm.CacheCapacity = int64(m["tapline_pebble_block_cache_bytes"]), int64(m["tapline_pebble_block_cache_capacity_bytes"])
	sm.MemTableBytes, sm.MemTableSize = int64(m["tapline_pebble_memtable_bytes"]), int64(m["tapline_pebble_memtable_size_bytes"])
	sm.Published = m["tapline_collector_hits_published_total"] + m["tapline_collector_events_accepted_total"]
	sm.Consumed = m["tapline_matcher_messages_total"]
	sm.LagSeconds = m["tapline_matcher_lag_seconds"]
	if v, ok := m["tapline_matcher_consumer_lag_messages"]; ok {
		sm.LagMessages, sm.LagSource = v, "gauge"
	} else {
		sm.LagMessages, sm.LagSource = max(sm.Published-sm.Consumed, 0), "counters"
	}
	if sm.BusBytes, err = diskUsage(filepath.Join(s.dataDir, "bus")); err != nil {
		return err
	}
	if sm.RawBytes, err = diskUsage(filepath.Join(s.dataDir, "raw")); err != nil {
		return err
	}
	if sm.FactBytes, sm.ConversionBytes, err = pgSizes(ctx, s.pool); err != nil {
		return err
	}
	cut := now.Add(-s.cfg.Retention)
	for i := len(s.samples) - 1; i >= 0; i-- {
		if !s.samples[i].At.After(cut) {
			sm.PastRetention = s.samples[i].Published
			break
		}
	}
	if err := s.probe(ctx, &sm); err != nil {
		return err
	}
	if !s.halfHeap && sm.Elapsed >= s.cfg.Duration.Seconds()/2 {
		s.halfHeap = true
		if err := s.heapProfile(ctx, "heap-half.pb.gz"); err != nil {
			return err
		}
	}
	s.samples = append(s.samples, sm)
	if s.csv != nil {
		if err := s.csv.Write(sm); err != nil {
			return err
		}
	}
	s.cfg.Logger.Info("soak: sample", "elapsed", time.Duration(sm.Elapsed*float64(time.Second)).Round(time.Second),
		"rss_mib", sm.RSSKB>>10, "rss_anon_mib", sm.RSSAnonKB>>10, "rss_file_mib", sm.RSSFileKB>>10, "heap_inuse_mib", sm.HeapInuse>>20, "go_sys_mib", sm.GoSys>>20,
		"pebble_cache_mib", sm.CacheBytes>>20, "memtable_mib", sm.MemTableBytes>>20,
		"goroutines", sm.Goroutines, "open_files", sm.OpenFiles, "table_files", sm.TableFiles, "sockets", sm.Sockets,
		"bus_mib", sm.BusBytes>>20, "raw_mib", sm.RawBytes>>20, "pg_mib", (sm.FactBytes+sm.ConversionBytes)>>20,
		"lag_messages", sm.LagMessages, "sent", sm.Sent, "scheduled", sm.Scheduled, "failed", sm.Failed,
		"old_visible", fmt.Sprintf("%d/%d", sm.OldVisible, sm.OldProbed), "young_visible", fmt.Sprintf("%d/%d", sm.NewVisible, sm.NewProbed))
	return nil
}

// probe looks installations up through the SDK's timeline API: old ones,
// sent before the retention and one more expiry pass (and a margin for
// the matcher's lag) had passed, none of whose raw events stamped before
// that cutoff may come back, and young ones, sent in the last half of the
// retention but at least a second (and the matcher's lag) ago, whose
// events must come back. An
// installation the matcher has not converted yet answers nothing found and
// is not counted.
func (s *sampler) probe(ctx context.Context, sm *Sample) error {
	margin := 5*time.Second + time.Duration(sm.LagSeconds*float64(time.Second))
	now := sm.At
	cut := now.Add(-s.cfg.Retention - s.cfg.ExpireEvery - margin)
	for _, in := range s.load.probeSet(s.start, cut, s.cfg.Probes) {
		found, events, err := s.lookup(ctx, in.installID)
		if err != nil {
			return err
		}
		if !found {
			continue
		}
		sm.OldProbed++
		for _, at := range events {
			if at.Before(cut) {
				sm.OldVisible++
				break
			}
		}
	}
	youngFrom := now.Add(-s.cfg.Retention / 2)
	if youngFrom.Before(s.start) {
		youngFrom = s.start
	}
	lag := time.Second + time.Duration(sm.LagSeconds*float64(time.Second)) // for the matcher to convert them
	for _, in := range s.load.probeSet(youngFrom, now.Add(-lag), s.cfg.Probes) {
		found, events, err := s.lookup(ctx, in.installID)
		if err != nil {
			return err
		}
		if found {
			sm.NewProbed++
			if len(events) > 0 {
				sm.NewVisible++
			}
		}
	}
	return nil
}

// lookup asks the timeline API for installID's timeline: found when the
// installation has a conversion; the times of the raw events that came
// back.
func (s *sampler) lookup(ctx context.Context, installID string) (found bool, events []time.Time, err error) {
	q := url.Values{"secret": {s.secret}, "event_session": {installID}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/v1/timelines/lookup?"+q.Encode(), nil)
	if err != nil {
		return false, nil, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return false, nil, fmt.Errorf("timeline lookup: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return false, nil, fmt.Errorf("timeline lookup: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return false, nil, fmt.Errorf("timeline lookup: %s: %s", resp.Status, body)
	}
	if string(body) == "[]" {
		return false, nil, nil
	}
	var t struct {
		Events []struct {
			Created int64 `json:"created"` // Unix milliseconds
		} `json:"events"`
	}
	if err := json.Unmarshal(body, &t); err != nil {
		return false, nil, fmt.Errorf("timeline lookup: %w: %.200s", err, body)
	}
	for _, e := range t.Events {
		events = append(events, time.UnixMilli(e.Created))
	}
	return true, events, nil
}

// capacityFile is the part of bench/results/latest.json Capacity reads.
type capacityFile struct {
	Redirect []struct {
		Target  string `json:"target"`
		Summary struct {
			Rate float64 `json:"per_second"`
		} `json:"summary"`
	} `json:"redirect"`
	Ingest []struct {
		Target       string  `json:"target"`
		Protocol     string  `json:"protocol"`
		EventsPerSec float64 `json:"events_per_second"`
	} `json:"ingest"`
}

// ErrNoCapacity says a results file lacks tapline's redirect or Tapstream
// ingest row: a `make bench` run that measured something else.
var ErrNoCapacity = errors.New("no tapline redirect or tapstream ingest row")

// ReadCapacity reads tapline's redirect rate and its Tapstream form
// ingest rate (events a second, one a request) from a `make bench`
// results file.
func ReadCapacity(path string) (redirect, ingest float64, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	var f capacityFile
	if err := json.Unmarshal(b, &f); err != nil {
		return 0, 0, fmt.Errorf("read capacity from %s: %w", path, err)
	}
	for _, r := range f.Redirect {
		if r.Target == "tapline" {
			redirect = r.Summary.Rate
		}
	}
	for _, r := range f.Ingest {
		if r.Target == "tapline" && r.Protocol == "tapstream" {
			ingest = r.EventsPerSec
		}
	}
	if redirect <= 0 || ingest <= 0 {
		return 0, 0, fmt.Errorf("read capacity from %s: %w", path, ErrNoCapacity)
	}
	return redirect, ingest, nil
}

// MixRate returns the rate, in requests a second, of a load that is
// fraction of the capacity of a mix of tapShare taps and the rest SDK
// requests, each kind with the capacity given: the mix's capacity is the
// harmonic mean 1/(tapShare/redirect + (1-tapShare)/ingest).
func MixRate(fraction, tapShare, redirect, ingest float64) float64 {
	return fraction / (tapShare/redirect + (1-tapShare)/ingest)
}

// TapShare returns the share of taps among a generated workload's
// actions (what MixRate needs), from a round of the soak's population.
func TapShare(seed uint64, devices int) (float64, error) {
	w, err := loadgen.Generate(loadgen.NewConfig(seed, devices))
	if err != nil {
		return 0, err
	}
	if len(w.Timeline) == 0 {
		return 0, fmt.Errorf("empty workload")
	}
	return float64(len(w.Taps)) / float64(len(w.Timeline)), nil
}
