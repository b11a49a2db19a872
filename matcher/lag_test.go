package matcher

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"

	"tapline"
	"tapline/kafka"
)

// TestConsumerLagGauge publishes a workload while no matcher runs, checks
// that tapline_matcher_consumer_lag_messages reports every message, per
// partition as the bus's end offsets say, then runs the matcher and checks
// that the gauge drops to 0 once the facts are flushed. It runs on the
// embedded bus and on Kafka (kfake).
func TestConsumerLagGauge(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	buses := []struct {
		name string
		open func(t *testing.T, f *fixture) tapline.Bus
	}{
		{"pebble", func(t *testing.T, f *fixture) tapline.Bus { return f.pebbleBus(t, 4) }},
		{"kfake", func(t *testing.T, f *fixture) tapline.Bus {
			cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(cluster.Close)
			bus := kafka.NewBus(cluster.ListenAddrs()...)
			bus.NumPartitions = 4
			bus.Logger = quiet
			if err := bus.Open(context.Background()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { bus.Close() })
			return bus
		}},
	}
	for _, tc := range buses {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, "lag"+tc.name)
			bus := tc.open(t, f)
			phases, _ := workload(t, f.app.ID, 60)
			var msgs []tapline.Message
			for _, p := range phases {
				msgs = append(msgs, p...)
			}
			if err := bus.Publish(ctx, msgs...); err != nil {
				t.Fatal(err)
			}

			cfg := NewConfig()
			cfg.FlushInterval = 50 * time.Millisecond
			m := New(cfg, bus, f.raw, f.store, f.accounts)
			m.Logger = quiet
			reg := prometheus.NewRegistry()
			m.Registry = reg

			// Before Open nothing is registered: read the collector itself.
			byPart, total := scrapeLag(t, newLagCollector(m))
			if total != int64(len(msgs)) {
				t.Fatalf("lag before consuming = %d, want %d (messages published)", total, len(msgs))
			}
			ends := bus.(tapline.EndOffsetReader)
			for _, topic := range []string{tapline.TopicHits, tapline.TopicEvents} {
				es, err := ends.EndOffsets(ctx, topic)
				if err != nil {
					t.Fatal(err)
				}
				if len(es) != 4 {
					t.Fatalf("%s has %d end offsets, want 4", topic, len(es))
				}
				for i, e := range es {
					if got := byPart[topic+"/"+strconv.Itoa(i)]; got != e {
						t.Errorf("lag of %s/%d = %d, want its end offset %d", topic, i, got, e)
					}
				}
			}

			if err := m.Open(ctx); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { m.Close() })
			waitFor(t, "the lag gauge to reach 0", 20*time.Second, func() bool {
				_, total := gatherLag(t, reg)
				return total == 0
			})
			byPart, _ = gatherLag(t, reg)
			if len(byPart) != 8 {
				t.Errorf("the gauge has %d series, want 8 (4 partitions of 2 topics): %v", len(byPart), byPart)
			}

			// One more message: the gauge counts it until it is flushed.
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			if err := bus.Publish(ctx, msgs[0]); err != nil {
				t.Fatal(err)
			}
			if _, total := gatherLag(t, reg); total != 1 {
				t.Errorf("lag after one more message = %d, want 1", total)
			}
		})
	}
}

// scrapeLag collects c and returns the gauge by "topic/partition" and its
// sum.
func scrapeLag(t *testing.T, c prometheus.Collector) (map[string]int64, int64) {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	return gatherLag(t, reg)
}

func gatherLag(t *testing.T, g prometheus.Gatherer) (map[string]int64, int64) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	var total int64
	found := false
	for _, mf := range mfs {
		if mf.GetName() != "tapline_matcher_consumer_lag_messages" {
			continue
		}
		found = true
		for _, m := range mf.GetMetric() {
			var topic, part string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "topic":
					topic = l.GetValue()
				case "partition":
					part = l.GetValue()
				}
			}
			out[topic+"/"+part] = int64(m.GetGauge().GetValue())
			total += int64(m.GetGauge().GetValue())
		}
	}
	if !found {
		t.Fatal("no tapline_matcher_consumer_lag_messages in the registry")
	}
	return out, total
}
