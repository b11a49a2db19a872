package bench_test

import (
	"os"
	"syscall"
	"testing"
	"time"

	"tapline/bench"
)

// rusage is this process's user and system CPU time as the kernel reports it
// through getrusage, a second source to check /proc against.
func rusage(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestCPUTime burns CPU in this process until getrusage says 300 ms more were
// used, then checks /proc said about the same. Spinning on CPU time rather than
// on the wall clock keeps the test right on a loaded machine.
func TestCPUTime(t *testing.T) {
	before := bench.CPUTime(os.Getpid())
	if before <= 0 {
		t.Fatalf("CPUTime of this process = %s, want some", before)
	}
	start := rusage(t)
	x := 0
	for rusage(t)-start < 300*time.Millisecond {
		for i := range 100000 {
			x ^= i * i
		}
	}
	_ = x
	used := rusage(t) - start
	// /proc counts in clock ticks (10 ms) and sees the other goroutines too.
	if got := bench.CPUTime(os.Getpid()) - before; got < used-50*time.Millisecond || got > used+time.Second {
		t.Errorf("getrusage says %s of CPU time were used, /proc says %s", used, got)
	}
	if got := bench.CPUTime(1 << 30); got != 0 {
		t.Errorf("CPUTime of no process = %s, want 0", got)
	}
}
