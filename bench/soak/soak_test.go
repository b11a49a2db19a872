package soak_test

import (
	"bytes"
	"context"
	"image/png"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"tapline/bench/soak"
	"tapline/postgres/pgtest"
)

// TestSoakShort builds bin/tapline, soaks it for 25 s at a low rate with
// a sample every 2 s and an 8 s raw retention, and checks that every
// quantity was sampled from the live process, that the CSV holds the same
// samples, that expiry was seen (old installs' raw rows gone, young ones'
// there), that the verdict ran every rule, that the heap profiles were
// saved and that the plot is a PNG. A
// 25 s run proves nothing about leaks; the verdict's outcome is not
// asserted.
func TestSoakShort(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and soaks tapline for 25 s")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "tapline")
	build := exec.Command("go", "build", "-o", bin, "tapline/cmd/tapline")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build tapline: %v\n%s", err, out)
	}
	var csv bytes.Buffer
	cfg := soak.Config{
		Bin: bin, DatabaseURL: pgtest.URL(t), WorkDir: filepath.Join(dir, "work"),
		Duration: 25 * time.Second, Interval: 2 * time.Second, Rate: 300,
		Retention: 8 * time.Second, ExpireEvery: 2 * time.Second,
		Devices: 500, Workers: 8, Seed: 7, Samples: &csv,
		Logger: slog.New(slog.DiscardHandler),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := soak.Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// A sample at the start, one every 2 s, one at the end.
	if n := len(res.Samples); n < 11 || n > 15 {
		t.Fatalf("%d samples, want 11 to 15", n)
	}
	for i, s := range res.Samples {
		if s.RSSKB <= 0 || s.Goroutines <= 0 || s.OpenFiles <= 0 || s.BusBytes <= 0 || s.LagSource != "counters" && s.LagSource != "gauge" {
			t.Errorf("sample %d: %+v, want memory, goroutines, open files, a bus size and a lag source", i, s)
		}
		// tapline run's defaults: a 128 MiB raw store cache and the bus's
		// 32 MiB; 32 MiB memtables in each store.
		if s.HeapInuse <= 0 || s.GoSys < s.HeapInuse || s.CacheCapacity != 160<<20 || s.MemTableSize != 64<<20 ||
			s.RSSAnonKB <= 0 || s.RSSFileKB <= 0 || s.RSSAnonKB+s.RSSFileKB > s.RSSKB || s.Sockets <= 0 || s.TableFiles+s.Sockets > s.OpenFiles {
			t.Errorf("sample %d: %+v, want the Go heap within Go sys, pebble's configured sizes, RSS's parts, sockets", i, s)
		}
		if i > 0 && (s.Elapsed <= res.Samples[i-1].Elapsed || s.Published < res.Samples[i-1].Published) {
			t.Errorf("sample %d goes back: %+v after %+v", i, s, res.Samples[i-1])
		}
	}
	last := res.Samples[len(res.Samples)-1]
	if last.Published < 1000 || last.Sent < 1000 || last.RawBytes <= 0 || last.FactBytes <= 0 || last.ConversionBytes <= 0 {
		t.Errorf("last sample %+v: want over 1000 records published and sent, and raw, fact and conversion sizes", last)
	}
	if last.Failed > last.Sent/100 {
		t.Errorf("%d of %d requests failed", last.Failed, last.Sent)
	}
	if last.PastRetention <= 0 {
		t.Errorf("no records past the retention by the end: %+v", last)
	}
	read, err := soak.ReadCSV(&csv)
	if err != nil {
		t.Fatal(err)
	}
	if len(read) != len(res.Samples) || read[len(read)-1].Published != last.Published || read[len(read)-1].RSSKB != last.RSSKB {
		t.Errorf("the CSV holds %d samples ending %+v, want %d ending %+v", len(read), read[len(read)-1], len(res.Samples), last)
	}
	if last.MemTableBytes <= 0 {
		t.Errorf("last sample %+v: want memtable bytes", last)
	}
	if len(res.Verdict.Checks) != 11 {
		t.Fatalf("verdict ran %d checks, want 11:\n%s", len(res.Verdict.Checks), res.Verdict)
	}
	for _, name := range []string{"heap-half.pb.gz", "heap-end.pb.gz"} {
		if fi, err := os.Stat(filepath.Join(cfg.WorkDir, name)); err != nil || fi.Size() == 0 {
			t.Errorf("heap profile %s: %v", name, err)
		}
	}
	for _, c := range res.Verdict.Checks {
		if c.Metric == "expiry" && (!c.Judged || !c.Pass) {
			t.Errorf("expiry not seen in 25 s with an 8 s retention: %s", c)
		}
	}
	var img bytes.Buffer
	if err := soak.Plot(&img, res.Samples, "TestSoakShort"); err != nil {
		t.Fatal(err)
	}
	cfgImg, err := png.DecodeConfig(&img)
	if err != nil || cfgImg.Width < 500 || cfgImg.Height < 500 {
		t.Errorf("plot: %dx%d (%v), want a PNG of at least 500x500", cfgImg.Width, cfgImg.Height, err)
	}
	t.Logf("verdict of a 25 s soak (not a leak test):\n%s", res.Verdict)
}
