package matcher

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kfake"

	"tapline"
	"tapline/kafka"
)

// wipeMessages returns one hit and one organic install for each of ids.
func wipeMessages(t *testing.T, appID int64, ids []string) []tapline.Message {
	t.Helper()
	at := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	var msgs []tapline.Message
	for i, id := range ids {
		h := &tapline.Hit{ID: "hit-" + id, Time: at.Add(time.Duration(i) * time.Millisecond), AppID: appID, LinkID: 1,
			IP: fmt.Sprintf("198.51.100.%d", i%250+1), UserAgent: chromeAndUA}
		e := &tapline.Event{ID: "install-" + id, AppID: appID, Name: "install", Kind: tapline.KindInstall,
			Time: at.Add(10 * time.Minute), ReceivedAt: at.Add(10 * time.Minute), InstallID: "device-" + id,
			IP: fmt.Sprintf("203.0.113.%d", i%250+1), Device: tapline.Device{Platform: tapline.PlatformIOS, OSVersion: "17.4.1", Model: "iPhone15,2"}}
		for _, v := range []struct {
			topic string
			v     any
		}{{tapline.TopicHits, h}, {tapline.TopicEvents, e}} {
			b, err := json.Marshal(v.v)
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, tapline.Message{Topic: v.topic, Key: []byte(id), Value: b})
		}
	}
	return msgs
}

func wipeIDs(prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return ids
}

// startKfake starts a one-broker kfake cluster on port, retrying while
// the port of a cluster just closed is still taken.
func startKfake(t *testing.T, port int) *kfake.Cluster {
	t.Helper()
	var err error
	for range 50 {
		var c *kfake.Cluster
		c, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(2))
		if err == nil {
			return c
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("start kfake on port %d: %v", port, err)
	return nil
}

// publishRetry publishes msgs, retrying while the bus reports the broker
// unavailable (as the collectors' spool does).
func publishRetry(t *testing.T, bus tapline.Bus, msgs []tapline.Message) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := bus.Publish(ctx, msgs...)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("publish %d messages: %v", len(msgs), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestBrokerWipe consumes N hits and N installs from kfake, closes the
// cluster and starts a new, empty one on the same port (a broker that lost
// its log: topics created anew, offsets from 0), then publishes M new hits
// and installs and K copies of already counted ones (a collector's spool
// resending). The matcher must notice that its stored offsets lie past the
// new logs' ends (or that the topics were gone), count one past_end or
// recreated reset for each partition it had
// consumed from, and end with exactly N+M hits and installs: nothing
// skipped, no resent copy counted twice. A restarted matcher then resumes
// from the stored position without another reset.
func TestBrokerWipe(t *testing.T) {
	const n, m, k = 40, 30, 10
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()

	cluster := startKfake(t, port)
	t.Cleanup(func() { cluster.Close() })
	bus := kafka.NewBus(fmt.Sprintf("127.0.0.1:%d", port))
	bus.NumPartitions = 2
	bus.Logger = quiet
	if err := bus.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bus.Close() })

	f := newFixture(t, "wipe")
	before := wipeIDs("before", n)
	publishRetry(t, bus, wipeMessages(t, f.app.ID, before))

	cfg := NewConfig()
	cfg.FlushInterval = 50 * time.Millisecond
	cfg.OffsetCheck = 200 * time.Millisecond
	mt := New(cfg, bus, f.raw, f.store, f.accounts)
	mt.Logger = quiet
	reg := prometheus.NewRegistry()
	mt.Registry = reg
	if err := mt.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mt.Close() })
	waitFor(t, "the first messages counted", 20*time.Second, func() bool {
		got := f.totals(t)
		return got.hits == n && got.installs == n
	})
	if err := mt.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	stored, err := f.store.Offsets(ctx, cfg.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	consumedFrom := map[string]int{} // topic -> partitions with a stored offset past 0
	var consumed int64
	for _, o := range stored {
		if o.Offset > 0 {
			consumedFrom[o.Topic]++
			consumed += o.Offset
		}
	}
	if consumed != 2*n {
		t.Fatalf("stored offsets sum to %d, want %d (every message published)", consumed, 2*n)
	}

	// The wipe: a new, empty cluster on the same port.
	cluster.Close()
	cluster = startKfake(t, port)

	// A first message on each topic, then the reset must show before the
	// new logs could reach the stored offsets.
	after := wipeIDs("after", m)
	publishRetry(t, bus, wipeMessages(t, f.app.ID, after[:1]))
	resets := func(topic string) float64 { // past_end or recreated: which one depends on who asks first
		return counterValue(t, mt.metrics.offsetResets.WithLabelValues(topic, resetPastEnd)) +
			counterValue(t, mt.metrics.offsetResets.WithLabelValues(topic, resetRecreated))
	}
	waitFor(t, "an offset reset on every consumed partition", 30*time.Second, func() bool {
		return resets(tapline.TopicHits) >= float64(consumedFrom[tapline.TopicHits]) &&
			resets(tapline.TopicEvents) >= float64(consumedFrom[tapline.TopicEvents])
	})
	msgs := wipeMessages(t, f.app.ID, after[1:])
	msgs = append(msgs, wipeMessages(t, f.app.ID, before[:k])...) // resent copies of counted ones
	publishRetry(t, bus, msgs)

	processed := func() float64 {
		return counterValue(t, mt.metrics.processed.WithLabelValues(tapline.TopicHits)) +
			counterValue(t, mt.metrics.processed.WithLabelValues(tapline.TopicEvents))
	}
	want := float64(2*n + 2*m + 2*k)
	waitFor(t, "every message processed", 30*time.Second, func() bool { return processed() == want })
	if err := mt.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := f.totals(t)
	if got.hits != n+m || got.installs != n+m {
		t.Fatalf("after the wipe: %d hits and %d installs counted, want %d and %d", got.hits, got.installs, n+m, n+m)
	}
	for _, topic := range []string{tapline.TopicHits, tapline.TopicEvents} {
		if r := resets(topic); r != float64(consumedFrom[topic]) {
			t.Errorf("%s: %v past_end and recreated resets, want %d (the partitions consumed from before the wipe)", topic, r, consumedFrom[topic])
		}
		if d := counterValue(t, mt.metrics.duplicates.WithLabelValues(topic)); d != k {
			t.Errorf("%s: %v duplicates dropped, want %d (the resent copies)", topic, d, k)
		}
	}

	// A restart resumes from the stored logical offsets: no reset, no
	// message read twice.
	if err := mt.Close(); err != nil {
		t.Fatal(err)
	}
	mt2 := New(cfg, bus, f.raw, f.store, f.accounts)
	mt2.Logger = quiet
	mt2.Registry = prometheus.NewRegistry()
	if err := mt2.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mt2.Close() })
	last := wipeIDs("last", 1)
	publishRetry(t, bus, wipeMessages(t, f.app.ID, last))
	waitFor(t, "the last hit and install counted", 20*time.Second, func() bool {
		got := f.totals(t)
		return got.hits == n+m+1 && got.installs == n+m+1
	})
	if err := mt2.Close(); err != nil {
		t.Fatal(err)
	}
	if got := f.totals(t); got.hits != n+m+1 || got.installs != n+m+1 {
		t.Errorf("after a restart: %d hits and %d installs, want %d each", got.hits, got.installs, n+m+1)
	}
	for _, topic := range []string{tapline.TopicHits, tapline.TopicEvents} {
		for _, reason := range []string{resetPastEnd, resetBeforeStart, resetRecreated} {
			if r := counterValue(t, mt2.metrics.offsetResets.WithLabelValues(topic, reason)); r != 0 {
				t.Errorf("restarted matcher: %v %s resets of %s, want 0", r, reason, topic)
			}
		}
		if p := counterValue(t, mt2.metrics.processed.WithLabelValues(topic)); p != 1 {
			t.Errorf("restarted matcher processed %v messages of %s, want 1", p, topic)
		}
	}
}

// counterValue reads a counter.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestRetentionPastStoredOffset publishes N hits and installs stamped
// eight days ago to kfake, lets kfake's retention (seven days by default)
// delete them before any matcher consumed them, then publishes M current
// ones. The matcher must start each partition at the log's start, count a
// before_start reset for each partition that lost messages and the N
// lost hits and installs in the lost-messages metric, and count exactly
// the M kept ones.
func TestRetentionPastStoredOffset(t *testing.T) {
	const n, m = 20, 15
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(2))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	bus := kafka.NewBus(cluster.ListenAddrs()...)
	bus.NumPartitions = 2
	bus.Logger = quiet
	if err := bus.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bus.Close() })

	f := newFixture(t, "retention")
	old := wipeMessages(t, f.app.ID, wipeIDs("old", n))
	for i := range old {
		old[i].Time = time.Now().Add(-8 * 24 * time.Hour)
	}
	publishRetry(t, bus, old)
	cluster.ApplyRetention()
	lostOn := map[string]int{} // topic -> partitions whose log start moved
	for _, topic := range []string{tapline.TopicHits, tapline.TopicEvents} {
		starts, err := bus.StartOffsets(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		ends, err := bus.EndOffsets(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		var sum int64
		for i, s := range starts {
			if s != ends[i] {
				t.Fatalf("%s/%d: log start %d, end %d: retention kept messages eight days old", topic, i, s, ends[i])
			}
			if s > 0 {
				lostOn[topic]++
			}
			sum += s
		}
		if sum != n {
			t.Fatalf("%s: log starts sum to %d after retention, want %d", topic, sum, n)
		}
	}
	publishRetry(t, bus, wipeMessages(t, f.app.ID, wipeIDs("kept", m)))

	cfg := NewConfig()
	cfg.FlushInterval = 50 * time.Millisecond
	cfg.OffsetCheck = 200 * time.Millisecond
	mt := New(cfg, bus, f.raw, f.store, f.accounts)
	mt.Logger = quiet
	mt.Registry = prometheus.NewRegistry()
	if err := mt.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mt.Close() })
	processed := func() float64 {
		return counterValue(t, mt.metrics.processed.WithLabelValues(tapline.TopicHits)) +
			counterValue(t, mt.metrics.processed.WithLabelValues(tapline.TopicEvents))
	}
	waitFor(t, "the kept messages processed", 20*time.Second, func() bool { return processed() == 2*m })
	if err := mt.Close(); err != nil {
		t.Fatal(err)
	}
	if got := f.totals(t); got.hits != m || got.installs != m {
		t.Errorf("%d hits and %d installs counted, want %d each (the ones retention kept)", got.hits, got.installs, m)
	}
	for _, topic := range []string{tapline.TopicHits, tapline.TopicEvents} {
		if r := counterValue(t, mt.metrics.offsetResets.WithLabelValues(topic, resetBeforeStart)); r != float64(lostOn[topic]) {
			t.Errorf("%s: %v before_start resets, want %d", topic, r, lostOn[topic])
		}
		if r := counterValue(t, mt.metrics.offsetResets.WithLabelValues(topic, resetPastEnd)); r != 0 {
			t.Errorf("%s: %v past_end resets, want 0", topic, r)
		}
		if l := counterValue(t, mt.metrics.offsetLost.WithLabelValues(topic)); l != n {
			t.Errorf("%s: %v messages counted lost, want %d", topic, l, n)
		}
	}
}
