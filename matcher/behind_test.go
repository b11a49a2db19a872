package matcher

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"tapline"
)

// downFacts is the real fact store refusing every flush while down is
// set, as when PostgreSQL is stopped.
type downFacts struct {
	tapline.FactStore
	down atomic.Bool
}

func (f *downFacts) ApplyFacts(ctx context.Context, consumer string, d map[tapline.FactKey]tapline.FactValue, o []tapline.Offset, rows tapline.FlushRows) error {
	if f.down.Load() {
		return errors.New("injected: the fact store is down")
	}
	return f.FactStore.ApplyFacts(ctx, consumer, d, o, rows)
}

// TestBehind holds a matcher back with its fact store down, by the bytes
// its pending rows hold, and checks that they stay within the bound; that
// Behind, and the gauge, grow with the wait of the messages it has
// fetched; that once the store is back and the backlog processed it says
// 0; and that it stays 0 while the partitions are quiet, however old the
// last message.
func TestBehind(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "behind")
	phases, want := workload(t, f.app.ID, 400)
	bus := f.pebbleBus(t, 1)
	// Every message's bus time is after this. Behind measures by the wall
	// clock (bus times are Unix nanoseconds), so this bound does too:
	// without Round(0), time.Since would use the monotonic clock, and a
	// wall clock stepped forward 7 ms during a run made Behind exceed it.
	publishing := time.Now().Round(0)
	if err := bus.Publish(ctx, append(phases[0], phases[1]...)...); err != nil {
		t.Fatal(err)
	}

	store := &downFacts{FactStore: f.store}
	store.down.Store(true)
	cfg := NewConfig()
	// Full fetches of two, and the hold-back reached by the bytes of a
	// dozen conversions, the count of rows far away.
	cfg.FetchMax, cfg.FlushInterval, cfg.OffsetCheck = 2, 20*time.Millisecond, 200*time.Millisecond
	cfg.MaxPending, cfg.MaxPendingBytes = 1_000_000, 32<<10
	m := New(cfg, bus, f.raw, store, f.accounts)
	m.Logger = slog.New(slog.DiscardHandler) // a flush fails every 20 ms
	reg := prometheus.NewRegistry()
	m.Registry = reg
	if err := m.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })

	time.Sleep(1500 * time.Millisecond)
	// Past the bound by at most the fetches that crossed it (two records
	// of a worker, a conversion each at most, on each topic).
	if rows, b := m.pending(); b > cfg.MaxPendingBytes+2*2*8<<10 {
		t.Errorf("held back with %d bytes in %d rows pending, want at most the bound of %d and a fetch", b, rows, cfg.MaxPendingBytes)
	}
	// Every failed flush takes the rows out of the aggregator: held back
	// by what the aggregator holds alone, the matcher would have read all.
	total := len(phases[0]) + len(phases[1])
	if n := sum(t, reg, "tapline_matcher_messages_total"); n > float64(total)/4 {
		t.Errorf("processed %.0f of %d records with the fact store down, want the bound to stop it within a quarter", n, total)
	}
	// Held back since soon after Open (the events worker may never have
	// fetched: then the wait counts from the hold-back).
	d, at := m.Behind()
	most := time.Since(publishing)
	if d < time.Second || d > most {
		t.Fatalf("held back for over a second: Behind says %s (%s/%d), want between 1s and %s", d, at.Topic, at.Partition, most)
	}
	if at.Topic != tapline.TopicHits && at.Topic != tapline.TopicEvents {
		t.Errorf("Behind names partition %+v", at)
	}
	if g := gauge(t, reg, "tapline_matcher_behind_seconds"); g < d.Seconds() {
		t.Errorf("tapline_matcher_behind_seconds %.1f, want at least %.1f", g, d.Seconds())
	}

	store.down.Store(false)
	waitFor(t, "the facts to reach the ground truth", 30*time.Second, func() bool { return same(f.totals(t), want) })
	waitFor(t, "Behind to say caught up", 10*time.Second, func() bool { d, _ := m.Behind(); return d == 0 })
	// The last messages are seconds old now; quiet partitions are not behind.
	for range 5 {
		time.Sleep(200 * time.Millisecond)
		if d, at := m.Behind(); d != 0 {
			t.Fatalf("caught up and quiet, Behind says %s (%s/%d)", d, at.Topic, at.Partition)
		}
	}
}

// gauge returns the value of reg's gauge name, gathered now.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}

// sum returns the sum of reg's counter name over its labels.
func sum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, f := range fams {
		if f.GetName() == name {
			for _, m := range f.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}
