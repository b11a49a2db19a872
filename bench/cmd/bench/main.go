// Command bench runs tapline's benchmark (package tapline/bench) against
// the binaries in -bin, prints one table and writes
// <out>/<timestamp>.json and <out>/latest.json.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"tapline/bench"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg := bench.NewConfig()
	bin := flag.String("bin", "bin", "directory holding the tapline, tapstream1 and funnelbackfill binaries")
	out := flag.String("out", "bench/results", "directory for the JSON results")
	flag.StringVar(&cfg.DatabaseURL, "database-url", os.Getenv("DATABASE_URL"), "PostgreSQL URL (fresh databases are created beside it)")
	flag.IntVar(&cfg.Workers, "workers", cfg.Workers, "concurrent workers")
	flag.DurationVar(&cfg.HammerFor, "hammer-for", cfg.HammerFor, "length of each closed-loop scenario")
	flag.IntVar(&cfg.Accuracy, "accuracy-devices", cfg.Accuracy, "tapping devices of the accuracy run")
	flag.IntVar(&cfg.GrowthBase, "growth-base", cfg.GrowthBase, "tapping devices of the 1x throughput workload")
	flag.IntVar(&cfg.Drain, "drain-devices", cfg.Drain, "tapping devices whose records pre-fill the bus")
	flag.Float64Var(&cfg.Compression, "compression", cfg.Compression, "simulated seconds per real second in the accuracy run")
	flag.IntVar(&cfg.LiveFunnels, "live-funnels", cfg.LiveFunnels, "live funnels of the second matcher drain (0: none)")
	flag.IntVar(&cfg.FunnelRows, "funnel-rows", cfg.FunnelRows, "raw rows (events, hits, conversions) of the funnel backfill scenario (0: none)")
	flag.IntVar(&cfg.FunnelGrowth, "funnel-growth", cfg.FunnelGrowth, "the funnel backfill also runs at funnel-rows divided by this, for the growth ratio (1: not)")
	flag.IntVar(&cfg.DashboardLinks, "dashboard-links", cfg.DashboardLinks, "links of the dashboard scenario's app (0: no scenario)")
	flag.IntVar(&cfg.DashboardDays, "dashboard-days", cfg.DashboardDays, "days of facts of the dashboard scenario")
	flag.StringVar(&cfg.FunnelProfile, "funnel-cpuprofile", "", "write CPU profiles of the funnel backfills to this file name plus .<funnel id> (runs bin/funnelbackfill)")
	flag.StringVar(&cfg.TaplineProfile, "cpuprofile-dir", "", "write a CPU profile of each tapline process to this directory, named after its data directory")
	flag.StringVar(&cfg.AccuracyBaseline, "accuracy-baseline", "bench/accuracy.json", "the accuracy check's baseline: the bench fails when the check's attributions differ from it (\"\": no comparison)")
	flag.BoolVar(&cfg.AcceptAccuracy, "accept-accuracy", false, "record this run's accuracy check as the baseline (after an intended change of the attributions)")
	only := flag.String("only", "", "comma-separated scenarios to run: main, check, nginx, tapstream1, growth, drain, funnel, dashboard (default all)")
	nginx := flag.Bool("nginx", true, "compare with nginx when it is installed")
	flag.BoolVar(&cfg.Keep, "keep", false, "keep the work directory (data dirs, process logs) and the fresh databases, to rerun a process by hand")
	flag.Parse()
	if *only != "" {
		cfg.Only = strings.Split(*only, ",")
	}
	if cfg.DatabaseURL == "" {
		return fmt.Errorf("-database-url or DATABASE_URL is required")
	}
	if cfg.TaplineProfile != "" {
		if err := os.MkdirAll(cfg.TaplineProfile, 0o755); err != nil {
			return fmt.Errorf("-cpuprofile-dir: %w", err)
		}
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	// Data directories and process logs live here; kept when the run fails.
	work, err := os.MkdirTemp("", "tapline-bench-")
	if err != nil {
		return err
	}
	cfg.WorkDir = work
	bench.DefaultStarters(&cfg, *bin)
	if !*nginx {
		cfg.NginxBin = ""
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	r := &bench.Runner{Config: cfg}
	res, err := r.Run(ctx)
	if res == nil {
		return fmt.Errorf("%w (process logs in %s)", err, work)
	}
	if err == nil && len(res.Errors) > 0 {
		err = fmt.Errorf("%d scenarios failed (process logs in %s): %s", len(res.Errors), work, strings.Join(res.Errors, "; "))
	}
	if err == nil && res.FunnelMismatch {
		err = fmt.Errorf("tapline, PostgreSQL and DuckDB counted the funnel differently (process logs in %s): %s", work, res.Funnel.Mismatch)
	}
	if err == nil && !cfg.Keep {
		os.RemoveAll(work)
	} else if cfg.Keep {
		fmt.Printf("kept: %s, and the databases beside %s\n", work, cfg.DatabaseURL)
	}
	fmt.Println()
	res.WriteTable(os.Stdout)
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	for _, name := range []string{res.Time.Format("20060102T150405Z") + ".json", "latest.json"} {
		f, err := os.Create(filepath.Join(*out, name))
		if err != nil {
			return err
		}
		if err := res.WriteJSON(f); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	fmt.Printf("\nresults: %s (took %s)\n", filepath.Join(*out, "latest.json"), time.Since(res.Time).Round(time.Second))
	return err
}
