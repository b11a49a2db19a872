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

// TestBehind holds a matcher back with its fact store down and checks
// that Behind, and the gauge, grow with the wait of the messages it has
// fetched; that once the store is back and the backlog processed it says
// 0; and that it stays 0 while the partitions are quiet, however old the
// last message.
func TestBehind(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "behind")
	phases, want := workload(t, f.app.ID, 40)
	bus := f.pebbleBus(t, 1)
	if err := bus.Publish(ctx, append(phases[0], phases[1]...)...); err != nil {
		t.Fatal(err)
	}
	published := time.Now() // every message's bus time is before this

	store := &downFacts{FactStore: f.store}
	store.down.Store(true)
	cfg := NewConfig()
	// Full fetches of two, and the hold-back (four times MaxPending
	// rows) reached within a few messages.
	cfg.FetchMax, cfg.MaxPending, cfg.FlushInterval, cfg.OffsetCheck = 2, 1, 20*time.Millisecond, 200*time.Millisecond
	m := New(cfg, bus, f.raw, store, f.accounts)
	m.Logger = slog.New(slog.DiscardHandler) // a flush fails every 20 ms
	reg := prometheus.NewRegistry()
	m.Registry = reg
	if err := m.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })

	time.Sleep(1500 * time.Millisecond)
	least := time.Since(published)
	d, at := m.Behind()
	if d < least || d > least+time.Minute {
		t.Fatalf("held back for %s: Behind says %s (%s/%d), want at least that", least, d, at.Topic, at.Partition)
	}
	if at.Topic != tapline.TopicHits && at.Topic != tapline.TopicEvents {
		t.Errorf("Behind names partition %+v", at)
	}
	if g := gauge(t, reg, "tapline_matcher_behind_seconds"); g < least.Seconds() {
		t.Errorf("tapline_matcher_behind_seconds %.1f, want at least %.1f", g, least.Seconds())
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
