package matcher

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"tapline"
)

// BenchmarkDrain measures how fast a matcher drains a pre-filled embedded
// bus into the facts: b.N devices' hits, installs and opens.
func BenchmarkDrain(b *testing.B) {
	ctx := context.Background()
	f := newFixture(b, "drain")
	phases, want := workload(b, f.app.ID, max(b.N, 100))
	bus := f.pebbleBus(b, 8)
	var all []tapline.Message
	for _, p := range phases {
		all = append(all, p...)
	}
	if err := bus.Publish(ctx, all...); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	m := New(NewConfig(), bus, f.raw, f.store, f.accounts)
	m.Logger = slog.New(slog.DiscardHandler)
	if err := m.Open(ctx); err != nil {
		b.Fatal(err)
	}
	waitFor(b, "the drain", 10*time.Minute, func() bool {
		var n int64
		for _, o := range m.agg.Offsets() {
			n += o.Offset
		}
		return n == int64(len(all))
	})
	if err := m.Close(); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	f.checkTotals(b, want)
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "msgs/s")
}
