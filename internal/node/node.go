package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"tapline/collector"
	"tapline/dashboard"
	"tapline/matcher"
	"tapline/pebble"
	"tapline/postgres"
)

var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError,
}

// NewLogger returns a JSON logger at the configured level.
func (c *Config) NewLogger(w *os.File) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: logLevels[c.LogLevel]}))
}

// Node is the all-in-one process: collector, matcher and dashboard on the
// embedded bus and raw store plus PostgreSQL.
type Node struct {
	Config Config
	Logger *slog.Logger

	// Set by Open.
	DB           *postgres.DB
	Accounts     *postgres.AccountService
	Bus          *pebble.Bus
	Raw          *pebble.RawStore
	Collector    *collector.Collector
	Matcher      *matcher.Matcher
	Dashboard    *dashboard.Dashboard
	Registry     *prometheus.Registry
	CollectorURL string // base URL the collector listens on
	DashboardURL string // base URL the dashboard listens on

	servers   []*http.Server
	serveWG   sync.WaitGroup
	closers   []func() error
	closeOnce sync.Once
	closeErr  error
}

// New returns a node for cfg.
func New(cfg Config, logger *slog.Logger) *Node {
	if logger == nil {
		logger = slog.Default()
	}
	return &Node{Config: cfg, Logger: logger}
}

// Open validates the configuration, opens PostgreSQL (migrating it), the
// embedded bus and raw store, starts the matcher, and binds and serves the
// collector and dashboard. On error everything opened so far is closed.
func (n *Node) Open(ctx context.Context) (err error) {
	if err := n.Config.Validate(); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = n.Close()
		}
	}()
	cfg := &n.Config
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	adminToken, err := secret(cfg.AdminToken, filepath.Join(cfg.DataDir, "admin.token"))
	if err != nil {
		return err
	}
	sessionKey, err := secret(cfg.SessionKey, filepath.Join(cfg.DataDir, "session.key"))
	if err != nil {
		return err
	}
	proxies, _ := cfg.trustedProxies()

	n.Registry = prometheus.NewRegistry()
	n.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	n.DB = postgres.NewDB(cfg.DatabaseURL)
	n.DB.Logger = n.Logger
	if err := n.DB.Open(ctx); err != nil {
		return fmt.Errorf("open postgres: %w", err)
	}
	n.closers = append(n.closers, n.DB.Close)
	if cfg.Migrate {
		if err := n.DB.Migrate(ctx); err != nil {
			return fmt.Errorf("migrate postgres: %w", err)
		}
	}
	n.Accounts = postgres.NewAccountService(n.DB)

	n.Bus = pebble.NewBus(filepath.Join(cfg.DataDir, "bus"))
	n.Bus.NumPartitions = cfg.Partitions
	n.Bus.Retention = cfg.BusRetention
	n.Bus.Logger = n.Logger
	if err := n.Bus.Open(); err != nil {
		return fmt.Errorf("open embedded bus: %w", err)
	}
	n.closers = append(n.closers, n.Bus.Close)

	n.Raw = pebble.NewRawStore(filepath.Join(cfg.DataDir, "raw"))
	n.Raw.Logger = n.Logger
	if err := n.Raw.Open(); err != nil {
		return fmt.Errorf("open embedded raw store: %w", err)
	}
	n.closers = append(n.closers, n.Raw.Close)

	n.Matcher = matcher.New(matcher.NewConfig(), n.Bus, n.Raw, postgres.NewFactStore(n.DB), n.Accounts)
	n.Matcher.Logger = n.Logger.With("component", "matcher")
	n.Matcher.Registry = n.Registry
	if err := n.Matcher.Open(ctx); err != nil {
		return fmt.Errorf("start matcher: %w", err)
	}
	n.closers = append(n.closers, n.Matcher.Close)

	collLn, err := net.Listen("tcp", cfg.CollectorAddr)
	if err != nil {
		return fmt.Errorf("listen collector on %s: %w", cfg.CollectorAddr, err)
	}
	n.CollectorURL = "http://" + collLn.Addr().String()
	dashLn, err := net.Listen("tcp", cfg.DashboardAddr)
	if err != nil {
		collLn.Close()
		return fmt.Errorf("listen dashboard on %s: %w", cfg.DashboardAddr, err)
	}
	n.DashboardURL = "http://" + dashLn.Addr().String()
	publicURL := strings.TrimRight(cfg.PublicURL, "/")
	if publicURL == "" {
		publicURL = n.CollectorURL
	}

	n.Collector = collector.New(collector.Config{TrustedProxies: proxies}, n.Accounts, n.Bus)
	n.Collector.Logger = n.Logger.With("component", "collector")
	n.Collector.Registry = n.Registry
	if err := n.Collector.Open(ctx); err != nil {
		collLn.Close()
		dashLn.Close()
		return fmt.Errorf("start collector: %w", err)
	}
	// The collector must stop (draining hits to the bus) before the
	// matcher and the bus close: closers run in reverse.
	n.closers = append(n.closers, n.Collector.Close)

	n.Dashboard = dashboard.New(dashboard.Config{
		AdminToken:    adminToken,
		SessionKey:    []byte(sessionKey),
		SecureCookies: cfg.SecureCookies,
		CollectorURL:  publicURL,
	}, n.Accounts, postgres.NewReports(n.DB))
	n.Dashboard.Logger = n.Logger.With("component", "dashboard")
	if err := n.Dashboard.Config.Validate(); err != nil {
		collLn.Close()
		dashLn.Close()
		return fmt.Errorf("dashboard config: %w", err)
	}

	if cfg.Demo {
		if _, err := SeedDemo(ctx, n.Accounts); err != nil {
			collLn.Close()
			dashLn.Close()
			return fmt.Errorf("seed demo: %w", err)
		}
	}

	n.serve(collLn, n.Collector.Handler())
	n.serve(dashLn, n.Dashboard.Handler())
	n.Logger.Info("tapline started", "collector", n.CollectorURL, "dashboard", n.DashboardURL, "data_dir", cfg.DataDir)
	return nil
}

func (n *Node) serve(ln net.Listener, h http.Handler) {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(n.Logger.Handler(), slog.LevelWarn),
	}
	n.servers = append(n.servers, srv)
	n.serveWG.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.Logger.Error("http server stopped", "addr", ln.Addr().String(), "err", err)
		}
	})
}

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
