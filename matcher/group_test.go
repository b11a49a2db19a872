package matcher

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"tapline"
	"tapline/kafka"
)

// TestConsumerGroupExactlyOnce runs matchers as one Kafka consumer group
// over kfake with 8 partitions per topic: two share the work, one of them
// is killed mid-stream (no final flush), a third joins later, and the facts
// must still equal the ground truth.
func TestConsumerGroupExactlyOnce(t *testing.T) {
	ctx := context.Background()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	bus := kafka.NewBus(brokers...)
	bus.NumPartitions = 8
	bus.Logger = quiet
	if err := bus.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	for _, topic := range []string{tapline.TopicHits, tapline.TopicEvents} {
		if n, err := bus.Partitions(ctx, topic); err != nil || n != 8 {
			t.Fatalf("create %s: %d partitions, %v", topic, n, err)
		}
	}

	f := newFixture(t, "grp")
	phases, want := workload(t, f.app.ID, 400)

	cfg := NewConfig()
	cfg.FlushInterval = 50 * time.Millisecond
	start := func() (*Matcher, *kafka.Group) {
		t.Helper()
		g := kafka.NewGroup(kafka.GroupConfig{
			Brokers: brokers, GroupID: "matchers", Topics: []string{tapline.TopicHits, tapline.TopicEvents},
			SessionTimeout: time.Second, RebalanceTimeout: 3 * time.Second, HeartbeatInterval: 100 * time.Millisecond,
			JoinBackoff: 100 * time.Millisecond, Timeout: 3 * time.Second, Logger: quiet,
		})
		if err := g.Open(ctx); err != nil {
			t.Fatal(err)
		}
		m := New(cfg, bus, f.raw, f.store, f.accounts)
		m.Group = g
		m.Logger = quiet
		if err := m.Open(ctx); err != nil {
			t.Fatal(err)
		}
		return m, g
	}
	// assigned returns the partitions m owns in its current generation.
	assigned := func(m *Matcher) []tapline.Partition {
		m.flushMu.Lock()
		defer m.flushMu.Unlock()
		if m.generation == nil {
			return nil
		}
		return m.generation.Assignments()
	}
	if err := bus.Publish(ctx, phases[0]...); err != nil {
		t.Fatal(err)
	}
	m1, g1 := start()
	m2, g2 := start()
	waitFor(t, "two members splitting 16 partitions", time.Minute, func() bool { return len(assigned(m1)) == 8 && len(assigned(m2)) == 8 })
	for _, m := range []*Matcher{m1, m2} {
		// The same partition numbers of both topics go to one member, so
		// one device's hits and events meet in one matcher.
		var hits, events []int
		for _, p := range assigned(m) {
			if p.Topic == tapline.TopicHits {
				hits = append(hits, p.Partition)
			} else {
				events = append(events, p.Partition)
			}
		}
		if !slices.Equal(hits, events) {
			t.Fatalf("member owns hits partitions %v but events partitions %v", hits, events)
		}
	}
	waitFor(t, "some progress", time.Minute, func() bool { return f.totals(t).hits > 0 })

	// Kill the second matcher: no final flush; its group connection goes.
	m2.abort()
	g2.Close()
	if err := bus.Publish(ctx, phases[1]...); err != nil {
		t.Fatal(err)
	}
	m3, g3 := start()
	waitFor(t, "the facts to reach the ground truth", time.Minute, func() bool { return same(f.totals(t), want) })

	for _, c := range []func() error{m1.Close, g1.Close, m3.Close, g3.Close} {
		if err := c(); err != nil {
			t.Error(err)
		}
	}
	f.checkTotals(t, want)
}
