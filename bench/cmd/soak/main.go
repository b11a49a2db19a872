// Command soak runs tapline's soak (package tapline/bench/soak): the
// all-in-one binary under steady load at a share of its measured capacity
// for -duration, sampled every -interval; it writes the samples as CSV,
// the result as JSON and the plot as PNG, prints the verdict and exits 1
// when the verdict fails.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"tapline/bench/soak"
)

// errVerdict is the run's error when the soak ran and its verdict failed.
var errVerdict = errors.New("the verdict failed")

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

func run() error {
	var cfg soak.Config
	bin := flag.String("bin", "bin/tapline", "the tapline binary")
	flag.StringVar(&cfg.DatabaseURL, "database-url", os.Getenv("DATABASE_URL"), "PostgreSQL URL (a fresh database is created beside it and dropped after)")
	workDir := flag.String("work-dir", "", "tapline's data dir, log and the samples go here (default a temporary directory, removed after unless -keep)")
	keep := flag.Bool("keep", false, "keep the work directory")
	flag.DurationVar(&cfg.Duration, "duration", 30*time.Minute, "how long the load runs")
	flag.DurationVar(&cfg.Interval, "interval", 0, "time between samples (default duration/30, at most 1m, at least 1s)")
	share := flag.Float64("load", 0.5, "the load as a share of tapline's capacity for the soak's mix of taps and SDK requests")
	flag.Float64Var(&cfg.Rate, "rate", 0, "the load in requests a second (overrides -load)")
	capFile := flag.String("capacity", "bench/results/latest.json", "a `make bench` results file giving tapline's redirect and ingest rates (when absent, -redirect-capacity and -ingest-capacity)")
	redirectCap := flag.Float64("redirect-capacity", 13390, "redirects a second tapline serves (default: the README's published run)")
	ingestCap := flag.Float64("ingest-capacity", 9113, "Tapstream form events a second tapline accepts (default: the README's published run)")
	flag.DurationVar(&cfg.Retention, "retention", 0, "the soak app's raw retention (default duration/6)")
	flag.DurationVar(&cfg.ExpireEvery, "expire-every", 0, "tapline's -matcher-expire-every (default the interval)")
	flag.DurationVar(&cfg.BusRetention, "bus-retention", time.Hour, "tapline's -bus-retention (at least 1h); the bus's size is held to level off when the run lasts twice this")
	flag.IntVar(&cfg.Devices, "devices", 5000, "tapping devices per generated round")
	flag.IntVar(&cfg.Workers, "workers", 32, "concurrent load workers")
	flag.Uint64Var(&cfg.Seed, "seed", 1, "the first round's seed")
	samples := flag.String("samples", "bench/results/soak.csv", "CSV file of the samples, written as they are taken")
	resultPath := flag.String("result", "bench/results/soak.json", "JSON file of the samples and the verdict")
	plotPath := flag.String("plot", "docs/soak.png", "PNG file of the plot")
	fromCSV := flag.String("from-csv", "", "run nothing: judge and plot the samples of this CSV file (a finished or cut-off run; give its -rate and -duration)")
	flag.Parse()
	if *fromCSV != "" {
		return replot(*fromCSV, *plotPath, cfg.Rate, cfg.Duration, cfg.BusRetention)
	}
	if cfg.DatabaseURL == "" {
		return fmt.Errorf("-database-url or DATABASE_URL is required")
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cfg.Logger = log
	cfg.Bin = *bin
	if cfg.Interval == 0 {
		cfg.Interval = min(max(cfg.Duration/30, time.Second), time.Minute)
	}
	if cfg.Rate == 0 {
		red, ing, err := soak.ReadCapacity(*capFile)
		switch {
		case err == nil:
			log.Info("soak: capacity from "+*capFile, "redirects_per_s", red, "events_per_s", ing)
		case errors.Is(err, os.ErrNotExist):
			red, ing = *redirectCap, *ingestCap
			log.Info("soak: no "+*capFile+"; capacity from the flags", "redirects_per_s", red, "events_per_s", ing)
		case errors.Is(err, soak.ErrNoCapacity):
			red, ing = *redirectCap, *ingestCap
			log.Warn("soak: "+*capFile+" has no tapline capacity (a partial make bench); capacity from the flags", "redirects_per_s", red, "events_per_s", ing)
		default:
			return err
		}
		taps, err := soak.TapShare(cfg.Seed, cfg.Devices)
		if err != nil {
			return fmt.Errorf("tap share of the workload: %w", err)
		}
		cfg.Rate = soak.MixRate(*share, taps, red, ing)
		log.Info("soak: load", "share_of_capacity", *share, "tap_share", taps, "requests_per_s", cfg.Rate)
	}
	if *workDir == "" {
		d, err := os.MkdirTemp("", "tapline-soak-")
		if err != nil {
			return err
		}
		*workDir = d
		if !*keep {
			defer os.RemoveAll(d)
		}
	}
	cfg.WorkDir = *workDir
	for _, p := range []string{*samples, *resultPath, *plotPath} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
	}
	f, err := os.Create(*samples)
	if err != nil {
		return err
	}
	defer f.Close()
	cfg.Samples = f

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := soak.Run(ctx, cfg)
	if err != nil {
		return err
	}
	out, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(*resultPath, out, 0o644); err != nil {
		return err
	}
	pf, err := os.Create(*plotPath)
	if err != nil {
		return err
	}
	title := fmt.Sprintf("tapline soak: %s at %.0f requests/s, raw retention %s (%s)", cfg.Duration, res.Rate, res.Retention, res.Samples[0].At.Format("2006-01-02 15:04 UTC"))
	if err := soak.Plot(pf, res.Samples, title); err != nil {
		pf.Close()
		return err
	}
	if err := pf.Close(); err != nil {
		return err
	}
	fmt.Print(soak.Summary(res.Samples))
	fmt.Print(res.Verdict)
	fmt.Printf("samples %s, result %s, plot %s\n", *samples, *resultPath, *plotPath)
	if !res.Verdict.Pass {
		return errVerdict
	}
	return nil
}

// replot judges and plots the samples of a CSV file a soak wrote.
func replot(csvPath, plotPath string, rate float64, duration, busRetention time.Duration) error {
	f, err := os.Open(csvPath)
	if err != nil {
		return err
	}
	defer f.Close()
	samples, err := soak.ReadCSV(f)
	if err != nil {
		return err
	}
	if len(samples) == 0 {
		return fmt.Errorf("%s holds no samples", csvPath)
	}
	pf, err := os.Create(plotPath)
	if err != nil {
		return err
	}
	title := fmt.Sprintf("tapline soak: %s at %.0f requests/s (%s)", duration, rate, samples[0].At.Format("2006-01-02 15:04 UTC"))
	if err := soak.Plot(pf, samples, title); err != nil {
		pf.Close()
		return err
	}
	if err := pf.Close(); err != nil {
		return err
	}
	v := soak.Judge(samples, soak.DefaultLimits(), rate, duration >= 2*busRetention)
	fmt.Print(soak.Summary(samples))
	fmt.Print(v)
	if !v.Pass {
		return errVerdict
	}
	return nil
}
