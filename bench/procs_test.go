package bench_test

import (
	"os"
	"testing"
	"time"

	"tapline/bench"
)

// TestCPUTime burns CPU in this process and reads it back from /proc.
func TestCPUTime(t *testing.T) {
	before := bench.CPUTime(os.Getpid())
	if before <= 0 {
		t.Fatalf("CPUTime of this process = %s, want some", before)
	}
	x := 0
	for start := time.Now(); time.Since(start) < 300*time.Millisecond; {
		for i := range 1000 {
			x ^= i * i
		}
	}
	_ = x
	if got := bench.CPUTime(os.Getpid()) - before; got < 150*time.Millisecond || got > 2*time.Second {
		t.Errorf("300 ms of spinning added %s of CPU time, want about 300 ms", got)
	}
	if got := bench.CPUTime(1 << 30); got != 0 {
		t.Errorf("CPUTime of no process = %s, want 0", got)
	}
}
