package funnels

import (
	"math"
	"runtime/debug"
	"testing"
)

// TestTuneGC checks the budget a backfill process runs under: the soft
// limit set and the proportional collector off, and the collector kept
// proportional when there is no finite limit (GOMEMLIMIT=off), so the heap
// is never unbounded.
func TestTuneGC(t *testing.T) {
	limit, percent := debug.SetMemoryLimit(-1), debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetMemoryLimit(limit); debug.SetGCPercent(percent) })

	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	TuneGC()
	if got := debug.SetMemoryLimit(-1); got != BackfillMemoryLimit {
		t.Errorf("memory limit %d, want %d", got, BackfillMemoryLimit)
	}
	if got := debug.SetGCPercent(100); got != -1 {
		t.Errorf("GC percent %d, want -1 (off) under a finite limit", got)
	}

	// GOMEMLIMIT=off: the runtime has no limit; TuneGC keeps it.
	debug.SetMemoryLimit(math.MaxInt64)
	t.Setenv("GOMEMLIMIT", "off")
	TuneGC()
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("memory limit %d, want none (GOMEMLIMIT=off)", got)
	}
	if got := debug.SetGCPercent(100); got != 400 {
		t.Errorf("GC percent %d without a limit, want 400", got)
	}

	// GOGC set: left alone.
	t.Setenv("GOGC", "150")
	TuneGC()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GC percent %d, want the 100 set before (GOGC is the user's)", got)
	}
}
