package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	pprofhttp "net/http/pprof"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"tapline"
	"tapline/cassandra"

	"tapline/collector"
	"tapline/dashboard"
	"tapline/export"
	"tapline/fraud"
	"tapline/funnels"
	"tapline/internal/health"
	"tapline/kafka"
	"tapline/matcher"
	"tapline/pebble"
	"tapline/postbacks"
	"tapline/postgres"
	"tapline/skadnetwork"
	"tapline/whatif"
)

var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError,
}

// NewLogger returns a JSON logger at the configured level.
func (c *Config) NewLogger(w *os.File) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: logLevels[c.LogLevel]}))
}

// Node is one tapline process: the components its Config.Target names,
// on the embedded bus and raw store or on Kafka and Cassandra, plus
// PostgreSQL.
type Node struct {
	Config Config
	Logger *slog.Logger

	// Set by Open, for the components the target runs.
	DB           *postgres.DB
	Accounts     *postgres.AccountService
	Funnels      *postgres.FunnelStore
	Postbacks    *postgres.PostbackService // templates and their outbox
	WhatIfs      *postgres.WhatIfStore
	SKAN         *postgres.SKANStore // SKAdNetwork postbacks and their fact rows
	Reports      *postgres.Reports
	Backfills    *funnels.Runner // the matcher's funnel backfills
	Bus          tapline.Bus
	Spool        *pebble.Spool    // the collector's disk spool, on Kafka
	Raw          tapline.RawStore // the matcher's, or a collector's read access
	Collector    *collector.Collector
	Matcher      *matcher.Matcher
	Dashboard    *dashboard.Dashboard
	Export       *export.API // the raw data export, on the dashboard's listener
	Registry     *prometheus.Registry
	CollectorURL string // base URL the collector listens on
	DashboardURL string // base URL the dashboard listens on
	MetricsURL   string // base URL of the operator's listener (-metrics-addr), when it has one
	DebugURL     string // base URL of /debug/pprof/ when DebugAddr is set

	servers   []*http.Server
	serveWG   sync.WaitGroup
	closers   []func() error
	listeners []net.Listener
	collLn    net.Listener
	dashLn    net.Listener
	closeOnce sync.Once
	closeErr  error
	db        *dbState   // PostgreSQL's readiness and what waits for it
	failed    chan error // a start deferred until PostgreSQL answered that failed
}

// New returns a node for cfg.
func New(cfg Config, logger *slog.Logger) *Node {
	if logger == nil {
		logger = slog.Default()
	}
	return &Node{Config: cfg, Logger: logger, failed: make(chan error, 1)}
}

// Open validates the configuration and opens, in order, PostgreSQL
// (migrating it), the bus and raw store, the matcher, the collector and
// the dashboard, as the target needs them; it binds the listeners and
// serves. On error everything opened so far is closed.
func (n *Node) Open(ctx context.Context) (err error) {
	if err := n.Config.Validate(); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			for _, ln := range n.listeners {
				ln.Close()
			}
			_ = n.Close()
		}
	}()
	cfg := &n.Config
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	if cfg.CPUProfile != "" {
		if err := n.startCPUProfile(cfg.CPUProfile); err != nil {
			return err
		}
	}
	n.Registry = prometheus.NewRegistry()
	n.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if err := n.openDB(ctx); err != nil {
		return err
	}

	if cfg.runs(TargetCollector) || cfg.runs(TargetMatcher) {
		if err := n.openBus(ctx); err != nil {
			return err
		}
	}
	if cfg.runs(TargetMatcher) {
		if err := n.openMatcher(ctx); err != nil {
			return err
		}
	}
	if cfg.runs(TargetCollector) {
		if err := n.openCollector(ctx); err != nil {
			return err
		}
	}
	if cfg.runs(TargetDashboard) {
		if err := n.openDashboard(ctx); err != nil {
			return err
		}
	}
	if addr := cfg.metricsAddr(); addr != "" {
		ln, err := n.listen("metrics-addr", addr, &n.MetricsURL)
		if err != nil {
			return err
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(n.Registry, promhttp.HandlerOpts{}))
		mux.Handle("GET /healthz", n.readiness())
		mux.HandleFunc("GET /livez", health.Live)
		n.serve(ln, mux)
	}
	if cfg.DebugAddr != "" {
		ln, err := n.listen("debug-addr", cfg.DebugAddr, &n.DebugURL)
		if err != nil {
			return err
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprofhttp.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprofhttp.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprofhttp.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprofhttp.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprofhttp.Trace)
		n.serve(ln, mux, withoutWriteTimeout) // a profile streams for as long as it was asked to
	}
	if n.Collector != nil {
		n.serve(n.collLn, n.Collector.Handler())
	}
	if n.Dashboard != nil {
		// The export streams for as long as it takes, past the server's
		// timeouts; a shutdown cuts it short and its clients resume.
		n.serve(n.dashLn, n.gateDB(n.Dashboard.Handler()), func(srv *http.Server) {
			srv.RegisterOnShutdown(func() { _ = n.Export.Close() })
		})
	}
	n.Logger.Info("tapline started", "target", cfg.Target, "collector", n.CollectorURL,
		"dashboard", n.DashboardURL, "metrics", n.MetricsURL, "kafka", cfg.KafkaBrokers != "", "cassandra", cfg.CassandraHosts != "")
	return nil
}

// listen binds addr and records its base URL in *url.
func (n *Node) listen(flag, addr string, url *string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("-%s: listen on %s: %w", flag, addr, err)
	}
	n.listeners = append(n.listeners, ln)
	*url = "http://" + ln.Addr().String()
	return ln, nil
}

// openBus opens Kafka when brokers are configured, else the embedded bus.
func (n *Node) openBus(ctx context.Context) error {
	cfg := &n.Config
	if cfg.KafkaBrokers != "" {
		b := kafka.NewBus(splitList(cfg.KafkaBrokers)...)
		b.NumPartitions = cfg.Partitions
		b.Logger = n.Logger
		if err := b.Open(ctx); err != nil {
			return fmt.Errorf("open kafka: %w", err)
		}
		n.Bus = b
		n.closers = append(n.closers, b.Close)
		return nil
	}
	b := pebble.NewBus(filepath.Join(cfg.DataDir, "bus"))
	b.NumPartitions = cfg.Partitions
	b.Retention = cfg.BusRetention
	b.MemTableSize = int64(cfg.MemTableMB) << 20
	b.MinFreeBytes = cfg.minFreeBytes()
	b.Logger = n.Logger
	if err := b.Open(); err != nil {
		return fmt.Errorf("open embedded bus: %w", err)
	}
	registerPebbleMemory(n.Registry, "bus", b.Memory)
	n.Bus = b
	n.closers = append(n.closers, b.Close)
	return nil
}

// openMatcher opens the raw store (Cassandra when hosts are configured,
// else embedded) and starts the matcher, in a consumer group on Kafka.
func (n *Node) openMatcher(ctx context.Context) error {
	cfg := &n.Config
	if cfg.CassandraHosts != "" {
		s := CassandraStore(cfg)
		s.Logger = n.Logger.With("component", "cassandra")
		if cfg.Migrate {
			if err := s.Migrate(ctx); err != nil {
				return fmt.Errorf("migrate cassandra: %w", err)
			}
		}
		if err := s.Open(ctx); err != nil {
			return fmt.Errorf("open cassandra: %w", err)
		}
		n.Raw = s
		n.closers = append(n.closers, s.Close)
	} else {
		s := pebble.NewRawStore(filepath.Join(cfg.DataDir, "raw"))
		s.Logger = n.Logger
		s.CacheSize = int64(cfg.RawCacheMB) << 20
		s.MemTableSize = int64(cfg.MemTableMB) << 20
		s.MinFreeBytes = cfg.minFreeBytes()
		if err := s.Open(); err != nil {
			return fmt.Errorf("open embedded raw store: %w", err)
		}
		registerPebbleMemory(n.Registry, "raw", s.Memory)
		n.Raw = s
		n.closers = append(n.closers, s.Close)
	}

	mcfg := MatcherConfig(cfg)
	n.Matcher = matcher.New(mcfg, n.Bus, n.Raw, postgres.NewFactStore(n.DB), n.Accounts)
	n.Matcher.Funnels = n.Funnels
	n.Matcher.Erasures = postgres.NewErasureStore(n.DB)
	n.Matcher.Postbacks = n.Postbacks
	n.Matcher.Logger = n.Logger.With("component", "matcher")
	n.Matcher.Now = cfg.now()
	n.Matcher.Registry = n.Registry
	if cfg.FraudDatacenters != "" {
		ranges, err := loadDatacenters(cfg.FraudDatacenters)
		if err != nil {
			return err
		}
		n.Matcher.Datacenters = ranges
		n.Logger.Info("datacenter ranges loaded", "file", cfg.FraudDatacenters, "ranges", ranges.Len())
	}
	// The matcher commits its offsets with the facts in PostgreSQL, so it
	// joins the group and consumes only once the database answers; the
	// bus keeps what arrives meanwhile and it catches up.
	err := n.whenDB(ctx, "the matcher", func(ctx context.Context, addCloser func(func() error)) error {
		if cfg.KafkaBrokers != "" {
			// The topics must exist before the group assigns their partitions.
			for _, t := range []string{cfg.HitsTopic, cfg.EventsTopic} {
				if _, err := n.Bus.Partitions(ctx, t); err != nil {
					return fmt.Errorf("create topic %s: %w", t, err)
				}
			}
			g := kafka.NewGroup(kafka.GroupConfig{
				Brokers:    splitList(cfg.KafkaBrokers),
				GroupID:    cfg.GroupID,
				Topics:     []string{cfg.HitsTopic, cfg.EventsTopic},
				InstanceID: cfg.groupInstanceID(),
				Logger:     n.Logger,
			})
			if err := g.Open(ctx); err != nil {
				return fmt.Errorf("join consumer group %s: %w", cfg.GroupID, err)
			}
			n.Matcher.Group = g
		}
		if err := n.Matcher.Open(ctx); err != nil {
			if g, ok := n.Matcher.Group.(*kafka.Group); ok {
				_ = g.Close() // joined again on the next attempt
				n.Matcher.Group = nil
			}
			return fmt.Errorf("start matcher: %w", err)
		}
		if g, ok := n.Matcher.Group.(*kafka.Group); ok {
			// Closed after the matcher: leaving the group ends the generation.
			addCloser(g.Close)
		}
		addCloser(n.Matcher.Close)
		if !cfg.NoPostbackSender {
			sender := postbacks.NewSender(n.Postbacks)
			sender.Client = postbacks.NewClient(cfg.PostbacksAllowPrivate)
			if cfg.PostbackLease > 0 {
				sender.Lease = cfg.PostbackLease
			}
			if cfg.PostbackRetryMin > 0 {
				sender.MinBackoff = cfg.PostbackRetryMin
				sender.MaxBackoff = max(sender.MaxBackoff, sender.MinBackoff)
			}
			sender.Logger = n.Logger.With("component", "postbacks")
			sender.Registerer = n.Registry
			if err := sender.Open(); err != nil {
				return err
			}
			// Stopped before the database closes (closers run in reverse).
			addCloser(sender.Close)
		}
		return nil
	})
	if err != nil {
		return err
	}

	// Every matcher process runs the requested what-ifs too, on scratch
	// stores under the data directory.
	n.WhatIfs = postgres.NewWhatIfStore(n.DB)
	wr := &whatif.Runner{Store: n.WhatIfs, Raw: n.Raw, Accounts: n.Accounts, Scratch: WhatIfScratch(filepath.Join(cfg.DataDir, "whatif")),
		Replay: WhatIfReplay(cfg, n.Logger), Logger: n.Logger.With("component", "whatif")}
	wctx, wstop := context.WithCancel(context.Background())
	wdone := make(chan struct{})
	go func() {
		defer close(wdone)
		wr.Loop(wctx)
	}()
	n.closers = append(n.closers, func() error { wstop(); <-wdone; return nil })

	// Every matcher process backfills funnels too: several share a
	// backfill by claiming its ranges (docs/funnels.md).
	n.Backfills = &funnels.Runner{Backfill: funnels.Backfill{
		Raw: n.Raw, Store: n.Funnels, Workers: cfg.BackfillWorkers, Rate: cfg.BackfillRate,
		Logger: n.Logger.With("component", "backfill"),
	}}
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Backfills.Run(rctx)
	}()
	// Stopped before the matcher and the raw store close.
	n.closers = append(n.closers, func() error { stop(); <-done; return nil })
	return nil
}

// openCollector binds the collector's listener and starts it; on Kafka
// its bus is wrapped in the disk spool.
func (n *Node) openCollector(ctx context.Context) error {
	cfg := &n.Config
	ln, err := n.listen("collector-addr", cfg.CollectorAddr, &n.CollectorURL)
	if err != nil {
		return err
	}
	n.collLn = ln
	bus := n.Bus
	if cfg.Target == TargetCollector && cfg.KafkaBrokers == "" {
		n.Logger.Warn("collecting onto the embedded bus only: nothing is matched until tapline run (target all) opens this data directory, "+
			"messages older than -bus-retention are dropped unread, and timeline lookups answer nothing found",
			"data_dir", cfg.DataDir, "bus_retention", cfg.BusRetention)
	}
	if cfg.KafkaBrokers != "" {
		dir := cfg.SpoolDir
		if dir == "" {
			dir = filepath.Join(cfg.DataDir, "spool")
		}
		sp := pebble.NewSpool(n.Bus, dir)
		sp.MaxBytes = cfg.SpoolMaxBytes
		sp.MinFreeBytes = cfg.minFreeBytes()
		sp.Logger = n.Logger.With("component", "spool")
		if err := sp.Open(); err != nil {
			return fmt.Errorf("open spool: %w", err)
		}
		n.closers = append(n.closers, sp.Close)
		n.Spool = sp
		n.Registry.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tapline_collector_spooled_messages", Help: "Messages in the disk spool waiting for Kafka."},
				func() float64 { return float64(sp.SpooledMessages()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tapline_collector_spooled_bytes", Help: "Bytes in the disk spool waiting for Kafka."},
				func() float64 { return float64(sp.SpooledBytes()) }),
		)
		bus = sp
	}
	proxies, _ := cfg.trustedProxies()
	n.Collector = collector.New(collector.Config{TrustedProxies: proxies, HitsTopic: cfg.HitsTopic, EventsTopic: cfg.EventsTopic,
		TapRate: cfg.TapRate, TapBurst: cfg.TapBurst, SKANRate: cfg.SKANRate, SKANBurst: cfg.SKANBurst, BinaryMessages: cfg.KafkaBrokers == "",
		SnapshotPath:   filepath.Join(cfg.DataDir, "collector-snapshot.json"),
		PrivateMetrics: cfg.metricsAddr() != ""}, n.Accounts, bus)
	n.Collector.Logger = n.Logger.With("component", "collector")
	n.Collector.Now = cfg.now()
	n.Collector.Registry = n.Registry
	if err := n.openRawReader(ctx, "the collector's timeline lookups"); err != nil {
		return err
	}
	n.Collector.RawStore = n.Raw
	n.Collector.SKAN = n.SKAN
	if cfg.SKANDevelopmentKeys {
		v := skadnetwork.DefaultVerifier()
		maps.Copy(v.JWSKeys, skadnetwork.DevelopmentKeys())
		n.Collector.SKANVerifier = v
		n.Logger.Warn("the collector trusts Apple's AdAttributionKit development keys: development postbacks count (-skan-development-keys)")
	}
	if err := n.Collector.Open(ctx); err != nil {
		return fmt.Errorf("start collector: %w", err)
	}
	// The collector stops (draining its hits to the bus) before the
	// matcher and the bus close: closers run in reverse.
	n.closers = append(n.closers, n.Collector.Close)
	return nil
}

// openRawReader gives a collector or a dashboard without a matcher read
// access to the raw store, for the Tapstream timeline lookups (deferred
// deep links) and the export of hits and events: Cassandra when hosts are
// configured (its schema made by the migrations job or a matcher), else
// none, and the lookups answer "nothing found", the exports 503. The
// all-in-one reads the matcher's store, in process.
func (n *Node) openRawReader(ctx context.Context, purpose string) error {
	cfg := &n.Config
	if n.Raw != nil || cfg.CassandraHosts == "" {
		return nil
	}
	s := CassandraStore(cfg)
	s.Logger = n.Logger.With("component", "cassandra")
	if err := s.Open(ctx); err != nil {
		return fmt.Errorf("open cassandra for %s: %w", purpose, err)
	}
	n.Raw = s
	n.closers = append(n.closers, s.Close)
	return nil
}

func (n *Node) openDashboard(ctx context.Context) error {
	cfg := &n.Config
	adminToken, err := secret(cfg.AdminToken, filepath.Join(cfg.DataDir, "admin.token"))
	if err != nil {
		return err
	}
	sessionKey, err := secret(cfg.SessionKey, filepath.Join(cfg.DataDir, "session.key"))
	if err != nil {
		return err
	}
	ln, err := n.listen("dashboard-addr", cfg.DashboardAddr, &n.DashboardURL)
	if err != nil {
		return err
	}
	n.dashLn = ln
	publicURL := cfg.PublicBase()
	if cfg.PublicURL == "" && n.CollectorURL != "" {
		publicURL = n.CollectorURL
	}
	reports := n.Reports
	if reports == nil {
		reports = postgres.NewReports(n.DB)
	}
	funnelStore := n.Funnels
	if funnelStore == nil {
		funnelStore = postgres.NewFunnelStore(n.DB)
	}
	proxies, _ := cfg.trustedProxies() // Validate checked them
	n.Dashboard = dashboard.New(dashboard.Config{
		AdminToken:     adminToken,
		SessionKey:     []byte(sessionKey),
		SecureCookies:  cfg.SecureCookies,
		CollectorURL:   publicURL,
		TrustedProxies: proxies,
		// The matchers' retention, as the delivery log tells it: the
		// processes of a deployment share their flags.
		DeliveryRetention: cfg.PostbackRetention,
	}, n.Accounts, reports)
	n.Dashboard.Funnels, n.Dashboard.FunnelReports = funnelStore, reports
	n.Dashboard.Erasures = postgres.NewErasureStore(n.DB)
	n.Dashboard.Postbacks = n.Postbacks
	n.Dashboard.WhatIfs = postgres.NewWhatIfStore(n.DB)
	try := postbacks.NewSender(nil)
	try.Client = postbacks.NewClient(cfg.PostbacksAllowPrivate)
	n.Dashboard.TryPostback = try.Try
	n.Dashboard.SKAN = n.SKAN
	// The all-in-one starts a saved funnel's backfill at once; a dashboard
	// without a matcher leaves it to the matchers' runners, which poll.
	if n.Backfills != nil {
		n.Dashboard.OnFunnelSaved = n.Backfills.Wake
	}
	n.Dashboard.Logger = n.Logger.With("component", "dashboard")
	// The dashboard's /healthz checks PostgreSQL, and in the all-in-one
	// the matcher's bus and lag too; its metrics join the process's.
	n.Dashboard.Health = []health.Check{n.postgresCheck()}
	if n.Matcher != nil {
		n.Dashboard.Health = []health.Check{n.postgresCheck(), n.busCheck(), n.lagCheck(false)}
	}
	n.Dashboard.Registry = n.Registry
	n.Dashboard.PrivateMetrics = cfg.metricsAddr() != ""
	if err := n.Dashboard.Validate(); err != nil {
		return fmt.Errorf("dashboard config: %w", err)
	}
	if err := n.openExport(ctx, reports); err != nil {
		return err
	}
	n.Dashboard.Export = n.Export.Mount
	// Logged-in owners download from the app page through the same
	// streaming, authorised by the dashboard.
	n.Dashboard.Download = n.Export.Download
	return nil
}

// openExport makes the raw data export the dashboard's listener serves:
// conversions from PostgreSQL, hits and events from the raw store, the
// matcher's in the all-in-one, Cassandra's in a dashboard given its hosts.
// Without a raw store the exports of hits and events answer 503.
func (n *Node) openExport(ctx context.Context, reports *postgres.Reports) error {
	if err := n.openRawReader(ctx, "the export of hits and events"); err != nil {
		return err
	}
	n.Export = export.New(n.Accounts, reports)
	n.Export.Logger = n.Logger.With("component", "export")
	if n.Raw != nil {
		n.Export.Raw = n.Raw
	} else {
		n.Export.RawMissing = "Exporting hits and events needs the raw store, which this dashboard does not have: " +
			"start it with -cassandra-hosts (TAPLINE_CASSANDRA_HOSTS), or export from the all-in-one process (tapline run)."
	}
	if err := n.Export.Validate(); err != nil {
		return fmt.Errorf("export config: %w", err)
	}
	return nil
}

// serve serves h on ln with the configured timeouts (opts may change them
// for one listener) until Close. Every listener of the process goes
// through it.
func (n *Node) serve(ln net.Listener, h http.Handler, opts ...func(*http.Server)) {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: n.Config.HTTPReadHeaderTimeout,
		ReadTimeout:       n.Config.HTTPReadTimeout,
		WriteTimeout:      n.Config.HTTPWriteTimeout,
		IdleTimeout:       n.Config.HTTPIdleTimeout,
		ErrorLog:          slog.NewLogLogger(n.Logger.Handler(), slog.LevelWarn),
	}
	for _, o := range opts {
		o(srv)
	}
	n.servers = append(n.servers, srv)
	n.serveWG.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.Logger.Error("http server stopped", "addr", ln.Addr().String(), "err", err)
		}
	})
}

func withoutWriteTimeout(srv *http.Server) { srv.WriteTimeout = 0 }

// Close shuts the HTTP servers down gracefully (waiting up to
// ShutdownGrace for requests in flight), then the collector (draining its
// queue to the bus), the matcher (flushing its facts), the stores and the
// database. It returns the first error and is safe to call twice.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), n.Config.ShutdownGrace)
		defer cancel()
		var errs []error
		for _, srv := range n.servers {
			if err := srv.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("shut down http server: %w", err))
			}
		}
		n.serveWG.Wait()
		for i := len(n.closers) - 1; i >= 0; i-- {
			if err := n.closers[i](); err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			n.closeErr = errs[0]
		}
	})
	return n.closeErr
}

// startCPUProfile profiles the process into path until Close, which
// stops the profile last, after every component has shut down.
func (n *Node) startCPUProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return fmt.Errorf("start cpu profile: %w", err)
	}
	n.closers = append(n.closers, func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("write cpu profile: %w", err)
		}
		return nil
	})
	return nil
}

// secret returns value when set, else the contents of path, creating it
// with 32 random bytes (hex) the first time.
func secret(value, path string) (string, error) {
	if value != "" {
		return value, nil
	}
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 32 {
		return strings.TrimSpace(string(b)), nil
	}
	buf := make([]byte, 32)
	_, _ = rand.Read(buf)
	s := hex.EncodeToString(buf)
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write generated secret %s: %w", path, err)
	}
	return s, nil
}

// CassandraStore returns the Cassandra raw store cfg configures, not yet
// opened.
func CassandraStore(cfg *Config) *cassandra.RawStore {
	return cassandra.NewRawStore(cassandra.Config{
		Hosts:             splitList(cfg.CassandraHosts),
		Keyspace:          cfg.CassandraKeyspace,
		Consistency:       cfg.CassandraConsistency,
		LocalDC:           cfg.CassandraLocalDC,
		ReplicationFactor: cfg.CassandraReplication,
	})
}

// MigrateCassandra creates the keyspace named by cfg if absent and applies
// the Cassandra migrations.
func MigrateCassandra(ctx context.Context, cfg *Config) error {
	if err := CassandraStore(cfg).Migrate(ctx); err != nil {
		return fmt.Errorf("migrate cassandra: %w", err)
	}
	return nil
}

// loadDatacenters reads a datacenter range list file into its lookup.
func loadDatacenters(path string) (*fraud.Ranges, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open datacenter ranges: %w", err)
	}
	defer f.Close()
	rs, err := fraud.ReadList(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("%s: no datacenter ranges", path)
	}
	return fraud.NewRanges(rs), nil
}

// WhatIfScratch returns the scratch stores of what-if replays: an embedded
// bus and raw store in a fresh directory under dir, removed after.
func WhatIfScratch(dir string) whatif.Scratch {
	return func(context.Context) (tapline.Bus, tapline.RawStore, func(), error) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, nil, nil, err
		}
		d, err := os.MkdirTemp(dir, "replay-")
		if err != nil {
			return nil, nil, nil, err
		}
		bus := pebble.NewBus(filepath.Join(d, "bus"))
		bus.NumPartitions = 1
		raw := pebble.NewRawStore(filepath.Join(d, "raw"))
		raw.CacheSize, raw.MemTableSize = 16<<20, 16<<20
		if err := bus.Open(); err != nil {
			os.RemoveAll(d)
			return nil, nil, nil, err
		}
		if err := raw.Open(); err != nil {
			bus.Close()
			os.RemoveAll(d)
			return nil, nil, nil, err
		}
		return bus, raw, func() { raw.Close(); bus.Close(); os.RemoveAll(d) }, nil
	}
}

// WhatIfReplay is matcher.Replay for package whatif, with the matcher
// configuration cfg gives.
func WhatIfReplay(cfg *Config, logger *slog.Logger) whatif.ReplayFunc {
	mcfg := MatcherConfig(cfg)
	return func(ctx context.Context, bus tapline.Bus, raw tapline.RawStore, app *tapline.App, links []*tapline.Link, hits []*tapline.Hit, installs []*tapline.Event) (map[string]*tapline.Conversion, error) {
		return matcher.Replay(ctx, mcfg, bus, raw, app, links, hits, installs, logger.With("component", "whatif-replay"))
	}
}

// MatcherConfig is the matcher configuration cfg gives.
func MatcherConfig(cfg *Config) matcher.Config {
	mcfg := matcher.NewConfig()
	mcfg.HitsTopic, mcfg.EventsTopic = cfg.HitsTopic, cfg.EventsTopic
	mcfg.Consumer = cfg.GroupID
	mcfg.ClockSkew = cfg.MatcherClockSkew
	mcfg.CollectorSkew = cfg.MatcherCollectorSkew
	mcfg.Ordered = cfg.MatcherOrdered
	mcfg.FunnelPoll = cfg.FunnelPoll
	mcfg.ExpireEvery = cfg.MatcherExpireEvery
	mcfg.DeliveryRetention = cfg.PostbackRetention
	mcfg.OffsetCheck = cfg.MatcherOffsetCheck
	mcfg.MaxPendingBytes = int64(cfg.MatcherMaxPendingMB) << 20
	mcfg.FloodParams = splitList(cfg.FraudFloodParams)
	return mcfg
}
