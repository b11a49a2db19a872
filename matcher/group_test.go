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
	"tapline/pebble"
	"tapline/postgres"
	"tapline/postgres/pgtest"
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

	db := pgtest.Open(t)
	accounts := postgres.NewAccountService(db)
	acct := &tapline.Account{Name: "grp", Email: "grp@example.com"}
	if err := accounts.CreateAccount(ctx, acct, "password-123456"); err != nil {
		t.Fatal(err)
	}
	app := &tapline.App{AccountID: acct.ID, Name: "Group", WebURL: "https://example.com/"}
	if err := accounts.CreateApp(ctx, app); err != nil {
		t.Fatal(err)
	}
	raw := pebble.NewRawStore(t.TempDir())
	if err := raw.Open(); err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	store := postgres.NewFactStore(db)
	phases, want := workload(t, app.ID, 400)

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
		m := New(cfg, bus, raw, store, accounts)
		m.Group = g
		m.Logger = quiet
		if err := m.Open(ctx); err != nil {
			t.Fatal(err)
		}
		return m, g
	}
	reports := postgres.NewReports(db)
	filter := tapline.StatsFilter{AppID: app.ID, From: time.Now().UTC().Add(-72 * time.Hour).Truncate(24 * time.Hour),
		To: time.Now().UTC().Add(48 * time.Hour).Truncate(24 * time.Hour), Location: time.UTC}
	totals := func() truth {
		t.Helper()
		days, err := reports.DailyStats(ctx, filter)
		if err != nil {
			t.Fatal(err)
		}
		var got truth
		for _, d := range days {
			got.hits += d.Hits
			got.installs += d.Installs
			got.conversions += d.Conversions
			got.events += d.Events
		}
		return got
	}
	same := func(a, b truth) bool {
		return a.hits == b.hits && a.installs == b.installs && a.conversions == b.conversions && a.events == b.events
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
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	if err := bus.Publish(ctx, phases[0]...); err != nil {
		t.Fatal(err)
	}
	m1, g1 := start()
	m2, g2 := start()
	waitFor("two members splitting 16 partitions", func() bool { return len(assigned(m1)) == 8 && len(assigned(m2)) == 8 })
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
	waitFor("some progress", func() bool { return totals().hits > 0 })

	// Kill the second matcher: no final flush; its group connection goes.
	m2.abort()
	g2.Close()
	if err := bus.Publish(ctx, phases[1]...); err != nil {
		t.Fatal(err)
	}
	m3, g3 := start()
	waitFor("the facts to reach the ground truth", func() bool { return same(totals(), want) })

	for _, c := range []func() error{m1.Close, g1.Close, m3.Close, g3.Close} {
		if err := c(); err != nil {
			t.Error(err)
		}
	}
	if got := totals(); !same(got, want) {
		t.Fatalf("facts: hits %d installs %d conversions %d events %d; want hits %d installs %d conversions %d events %d",
			got.hits, got.installs, got.conversions, got.events, want.hits, want.installs, want.conversions, want.events)
	}
}
