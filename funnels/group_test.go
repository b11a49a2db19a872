package funnels_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"tapline"
	"tapline/kafka"
	"tapline/matcher"
)

// TestFunnelsInConsumerGroup runs the matchers as one Kafka consumer group
// (kfake, 4 partitions a topic): a funnel created while two matchers share
// the partitions hands off across both, one matcher is killed without a
// flush while its partitions count live, a third joins, and the backfills
// run while records flow. Every funnel equals the reference.
func TestFunnelsInConsumerGroup(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the pipeline")
	}
	ctx := context.Background()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	quiet := slog.New(slog.DiscardHandler)
	bus := kafka.NewBus(brokers...)
	bus.NumPartitions = 4
	bus.Logger = quiet
	if err := bus.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	for _, topic := range []string{tapline.TopicHits, tapline.TopicEvents} {
		if _, err := bus.Partitions(ctx, topic); err != nil {
			t.Fatal(err)
		}
	}

	e := newEnv(t, "funnelgroup")
	e.bus = bus
	type member struct {
		m      *matcher.Matcher
		g      *kafka.Group
		facade *switchFacts
	}
	join := func() *member {
		g := kafka.NewGroup(kafka.GroupConfig{
			Brokers: brokers, GroupID: "matchers", Topics: []string{tapline.TopicHits, tapline.TopicEvents},
			SessionTimeout: time.Second, RebalanceTimeout: 3 * time.Second, HeartbeatInterval: 100 * time.Millisecond,
			JoinBackoff: 100 * time.Millisecond, Timeout: 3 * time.Second, Logger: quiet,
		})
		if err := g.Open(ctx); err != nil {
			t.Fatal(err)
		}
		m, facade := e.newMatcher(g)
		return &member{m, g, facade}
	}
	msgs := e.population(23, 140)
	third := len(msgs) / 3

	live := e.wideFunnels("group live")
	m1, m2 := join(), join()
	for _, f := range live {
		e.waitStatus(f.VersionID, tapline.FunnelBackfilling)
	}
	e.backfill(versionIDs(live)...)
	e.publish(msgs[:third])
	e.drain()

	// A funnel created while both matchers consume: each fixes the handoff
	// of its own partitions.
	middle := e.wideFunnels("group middle")
	e.publish(msgs[third : 2*third])
	for _, f := range middle {
		e.waitStatus(f.VersionID, tapline.FunnelBackfilling)
	}
	var backfilled atomic.Bool
	go func() {
		defer backfilled.Store(true)
		e.backfill(versionIDs(middle)...)
	}()

	// Kill the second matcher without a flush while it counts live; a
	// third joins and the last third flows.
	time.Sleep(30 * time.Millisecond)
	m2.facade.mu.Lock()
	m2.facade.killed = true
	m2.facade.mu.Unlock()
	m2.g.Close()
	_ = m2.m.Close()
	m3 := join()
	e.publish(msgs[2*third:])
	e.drain()
	for !backfilled.Load() {
		time.Sleep(20 * time.Millisecond)
	}
	for _, c := range []func() error{m1.m.Close, m1.g.Close, m3.m.Close, m3.g.Close} {
		if err := c(); err != nil {
			t.Error(err)
		}
	}
	for _, f := range append(live, middle...) {
		e.waitStatus(f.VersionID, tapline.FunnelLive)
	}
	e.compare(append(live, middle...)...)
}
