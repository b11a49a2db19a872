// Command funnelbackfill backfills the newest version of one funnel over
// an embedded raw store with funnels.Backfill.Run, as "tapline funnels
// backfill" does, optionally writing a CPU profile. The funnel benchmark
// (package tapline/bench) runs it to profile the backfill, and in place of
// the tapline binary when that has no "funnels backfill" command.
//
//	funnelbackfill -database-url URL -data-dir DIR [-workers N] [-cpuprofile FILE] [-trace FILE] FUNNEL_ID
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"syscall"
	"time"

	"tapline/funnels"
	"tapline/internal/node"
	"tapline/pebble"
	"tapline/postgres"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "funnelbackfill:", err)
		os.Exit(1)
	}
}

func run() error {
	dbURL := flag.String("database-url", os.Getenv("DATABASE_URL"), "PostgreSQL URL")
	dataDir := flag.String("data-dir", ".data", "data directory holding the embedded raw store (raw/)")
	workers := flag.Int("workers", runtime.NumCPU(), "range scans in parallel")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the backfill to this file")
	traceFile := flag.String("trace", "", "write an execution trace of the backfill to this file (go tool trace; -pprof=net, sync, syscall or sched show where it waits)")
	flag.Parse()
	if flag.NArg() != 1 {
		return fmt.Errorf("want one funnel ID")
	}
	id, err := strconv.ParseInt(flag.Arg(0), 10, 64)
	if err != nil {
		return fmt.Errorf("funnel ID: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	db := postgres.NewDB(*dbURL)
	db.Logger = logger
	if err := db.Open(ctx); err != nil {
		return err
	}
	defer db.Close()
	store := postgres.NewFunnelStore(db)
	f, err := store.Funnel(ctx, id)
	if err != nil {
		return err
	}
	raw := pebble.NewRawStore(filepath.Join(*dataDir, "raw"))
	raw.Logger = logger
	raw.CacheSize = node.BackfillRawCacheMB << 20 // as "tapline funnels backfill"
	raw.MemTableSize = node.BackfillMemTableMB << 20
	if err := raw.Open(); err != nil {
		return err
	}
	defer raw.Close()

	for _, rec := range []struct {
		path  string
		start func(io.Writer) error
		stop  func()
	}{{*profile, pprof.StartCPUProfile, pprof.StopCPUProfile}, {*traceFile, trace.Start, trace.Stop}} {
		if rec.path == "" {
			continue
		}
		f, err := os.Create(rec.path)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := rec.start(f); err != nil {
			return err
		}
		defer rec.stop()
	}
	funnels.TuneGC()
	start := time.Now()
	b := funnels.Backfill{Raw: raw, Store: store, Workers: *workers, Logger: logger}
	st, err := b.Run(ctx, f.VersionID)
	if err != nil {
		return err
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("backfilled version %d of funnel %d: %d events of %d installations in %s; Go runtime holds %d MB of the OS (heap %d MB); peak RSS %s\n",
		f.VersionID, f.ID, st.Rows, st.Installations, time.Since(start).Round(time.Millisecond), ms.Sys>>20, ms.HeapSys>>20, peakRSS())
	return nil
}

// peakRSS returns the process's peak resident set size as Linux reports
// it (VmHWM), or "unknown".
func peakRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
