// Command tapstream1 runs the "Tapstream 1.0" baseline server of the
// benchmark (package tapline/bench/tapstream1) on one address against one
// PostgreSQL database, creating its tables.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"tapline/bench/tapstream1"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "tapstream1:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg := tapstream1.Config{}
	addr := flag.String("addr", "127.0.0.1:8090", "listen address")
	dbURL := flag.String("database-url", os.Getenv("DATABASE_URL"), "PostgreSQL URL")
	links := flag.String("links", "", "comma-separated link slugs")
	conns := flag.Int("max-conns", 20, "PostgreSQL pool size")
	flag.StringVar(&cfg.Account, "account", "bench", "account name")
	flag.StringVar(&cfg.Secret, "secret", "", "Tapstream SDK secret")
	flag.StringVar(&cfg.SDKKey, "sdk-key", "", "JSON API key")
	flag.StringVar(&cfg.IOSURL, "ios-url", "https://apps.apple.com/app/id1234567890", "App Store URL")
	flag.StringVar(&cfg.AndroidURL, "android-url", "https://play.google.com/store/apps/details?id=com.example.loadgen", "Play Store URL")
	flag.StringVar(&cfg.WebURL, "web-url", "https://example.com/", "web URL")
	flag.DurationVar(&cfg.ClickWindow, "click-window", 7*24*time.Hour, "click window")
	flag.DurationVar(&cfg.FingerprintWindow, "fingerprint-window", 24*time.Hour, "fingerprint window")
	flag.Parse()
	cfg.Links = strings.Split(*links, ",")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	pcfg, err := pgxpool.ParseConfig(*dbURL)
	if err != nil {
		return fmt.Errorf("parse database url: %w", err)
	}
	pcfg.MaxConns = int32(*conns)
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return fmt.Errorf("open pool: %w", err)
	}
	defer pool.Close()
	s := tapstream1.New(cfg, pool)
	s.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := s.Migrate(ctx); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// The same timeouts as tapline's listeners (node.NewConfig).
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Println("tapstream1 listening on", ln.Addr())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
