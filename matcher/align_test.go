package matcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"tapline"
	"tapline/fingerprint"
)

// waitAsync runs c.wait(ctx, t) and returns a channel that receives its
// error when it returns.
func waitAsync(ctx context.Context, c *hitClock, t time.Time) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := c.wait(ctx, t)
		done <- err
	}()
	return done
}

func returned(t *testing.T, done <-chan error, want bool, what string) {
	t.Helper()
	select {
	case err := <-done:
		if !want {
			t.Fatalf("%s: wait returned (%v), want it blocked", what, err)
		}
		if err != nil {
			t.Fatalf("%s: wait: %v", what, err)
		}
	case <-time.After(100 * time.Millisecond):
		if want {
			t.Fatalf("%s: wait still blocked, want it returned", what)
		}
	}
}

func TestHitClock(t *testing.T) {
	ctx := context.Background()
	base := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	c := newHitClock(time.Hour)
	c.own(0)
	c.own(1)

	// Partitions not fetched yet are behind.
	done := waitAsync(ctx, c, base)
	returned(t, done, false, "partitions not fetched yet")
	c.batchDone(1, 0, 500)
	c.batchDone(0, 0, 500)
	returned(t, done, true, "partitions at the bus's end")

	c.fetched(0)
	c.processed(0, base.Add(-time.Second))
	done = waitAsync(ctx, c, base)
	returned(t, done, false, "partition 0 behind the event")
	c.processed(0, base)
	returned(t, done, true, "partition 0 reached the event's time")

	// A partition that reaches the bus's end (a short batch) stops
	// holding events back however old its last hit.
	c.fetched(1)
	done = waitAsync(ctx, c, base.Add(time.Minute))
	returned(t, done, false, "partition 1 working")
	c.batchDone(1, 3, 500)
	returned(t, done, false, "partition 0 still behind")
	c.batchDone(0, 500, 500) // a full batch: more to come
	returned(t, done, false, "partition 0 after a full batch")
	c.batchDone(0, 0, 500)
	returned(t, done, true, "both at the bus's end")

	// A partition owned by nobody here is not waited for. One working
	// through older hits holds events back however long it takes; one that
	// fails stops counting after the stall time, and holds them again once
	// it makes progress.
	c.reset()
	returned(t, waitAsync(ctx, c, base.Add(time.Hour)), true, "no partitions")
	stalled := newHitClock(50 * time.Millisecond)
	stalled.own(0)
	stalled.fetched(0)
	done = waitAsync(ctx, stalled, base)
	time.Sleep(200 * time.Millisecond)
	returned(t, done, false, "a slow partition, not failing, after four stall times")
	start := time.Now()
	stalled.failed(0)
	stalled.failed(0) // failing again does not restart the stall
	returned(t, done, true, "a partition failing for the stall time")
	if el := time.Since(start); el < 40*time.Millisecond {
		t.Fatalf("a failing partition released the event after %s, want after the 50ms stall", el)
	}
	stalled.processed(0, base.Add(-time.Minute))
	done = waitAsync(ctx, stalled, base)
	time.Sleep(100 * time.Millisecond)
	returned(t, done, false, "a failed partition that made progress again")
	stalled.processed(0, base)
	returned(t, done, true, "the partition caught up")

	cctx, cancel := context.WithCancel(ctx)
	c.own(0)
	c.fetched(0)
	done = waitAsync(cctx, c, base.Add(2*time.Hour))
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("wait after cancel: %v", err)
		}
	case <-time.After(time.Second):
		t.Fatal("wait ignored its context")
	}
}

// timedMessage returns the bus message of v, received at at.
func timedMessage(t *testing.T, topic string, key []byte, v any, at time.Time) tapline.Message {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return tapline.Message{Topic: topic, Key: key, Value: b, Time: at}
}

// TestBacklogMatchedInReceiveOrder fills the bus with a backlog of taps
// and, after them in receive time, the install of the last tap: however
// the two topics' workers are scheduled, the install meets its tap at
// first sight, as it would have live, instead of being recorded organic and
// re-attributed by the tap consumed after it.
func TestBacklogMatchedInReceiveOrder(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "backlog")
	fp := fingerprint.New()
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	bus := f.pebbleBus(t, 1)
	var msgs []tapline.Message
	add := func(topic string, key []byte, v any, at time.Time) {
		msgs = append(msgs, timedMessage(t, topic, key, v, at))
	}
	const taps = 3000
	var last *tapline.Hit
	for i := range taps {
		h := &tapline.Hit{ID: fmt.Sprintf("tap-%d", i), Time: base.Add(time.Duration(i) * time.Millisecond), AppID: f.app.ID, LinkID: 1,
			IP: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), UserAgent: chromeAndUA}
		fp.Hit(h)
		add(tapline.TopicHits, fingerprint.BusKey(f.app.ID, h.Fingerprint), h, h.Time)
		last = h
	}
	in := &tapline.Event{ID: "install", AppID: f.app.ID, Name: "install", Kind: tapline.KindInstall, InstallID: "device",
		Time: last.Time.Add(2 * time.Minute), IP: last.IP, Device: tapline.Device{Platform: tapline.PlatformAndroid, OSVersion: "10", Model: "Pixel 7"}}
	in.ReceivedAt = in.Time
	fp.Event(in)
	add(tapline.TopicEvents, fingerprint.BusKey(f.app.ID, in.Fingerprint), in, in.Time)
	if err := bus.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}

	cfg := NewConfig()
	cfg.FlushInterval = 20 * time.Millisecond
	cfg.FetchMax = 50
	m := New(cfg, bus, f.raw, f.store, f.accounts)
	if err := m.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var c *tapline.Conversion
	waitFor(t, "the install's conversion", 30*time.Second, func() bool {
		var err error
		c, err = f.raw.ConversionByInstall(ctx, f.app.ID, in.InstallID)
		return err == nil
	})
	if c.HitID != last.ID || c.Method != tapline.MethodFingerprint {
		t.Fatalf("install credited to %q by %s, want %s by fingerprint", c.HitID, c.Method, last.ID)
	}
	if len(c.History) != 1 || c.History[0].From != nil {
		t.Fatalf("install attributed %d times (first from %+v), want once: it was matched before its tap was consumed", len(c.History), c.History[0].From)
	}
	waitFor(t, "every tap counted", 30*time.Second, func() bool { return f.totals(t).hits == taps })
}

// TestOrderedReplay fills the bus with installs each followed, 3 seconds
// later (within the collectors' clock skew), by a tap of the same device, over two
// partitions per topic. In Ordered mode the matcher processes them in
// receive order on every run: each install first, recorded organic, then
// its tap, which re-attributes it. Unordered, the hits workers run ahead
// of the events workers and the installs meet their taps at first sight.
func TestOrderedReplay(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "ordered")
	fp := fingerprint.New()
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	bus := f.pebbleBus(t, 2)
	var msgs []tapline.Message
	add := func(topic string, key []byte, v any, at time.Time) {
		msgs = append(msgs, timedMessage(t, topic, key, v, at))
	}
	const devices = 200
	for i := range devices {
		at := base.Add(time.Duration(i) * time.Second)
		ip := fmt.Sprintf("10.1.%d.%d", i>>8, i&255)
		in := &tapline.Event{ID: fmt.Sprintf("install-%d", i), AppID: f.app.ID, Name: "install", Kind: tapline.KindInstall, InstallID: fmt.Sprintf("device-%d", i),
			Time: at, ReceivedAt: at, IP: ip, Device: tapline.Device{Platform: tapline.PlatformAndroid, OSVersion: "10", Model: "Pixel 7"}}
		fp.Event(in)
		add(tapline.TopicEvents, fingerprint.BusKey(f.app.ID, in.Fingerprint), in, in.Time)
		h := &tapline.Hit{ID: fmt.Sprintf("tap-%d", i), Time: at.Add(3 * time.Second), AppID: f.app.ID, LinkID: 1, IP: ip, UserAgent: chromeAndUA}
		fp.Hit(h)
		add(tapline.TopicHits, fingerprint.BusKey(f.app.ID, h.Fingerprint), h, h.Time)
	}
	if err := bus.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	cfg := NewConfig()
	cfg.FlushInterval = 20 * time.Millisecond
	cfg.FetchMax = 16
	cfg.Ordered = true
	m := New(cfg, bus, f.raw, f.store, f.accounts)
	if err := m.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	waitFor(t, "every tap counted", 30*time.Second, func() bool { return f.totals(t).hits == devices })
	for i := range devices {
		c, err := f.raw.ConversionByInstall(ctx, f.app.ID, fmt.Sprintf("device-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if len(c.History) != 2 || c.History[0].To.Method != tapline.MethodOrganic || c.HitID != fmt.Sprintf("tap-%d", i) {
			t.Fatalf("device %d: %d attributions, first %s, now %q; want organic first, then tap-%d consumed after the install",
				i, len(c.History), c.History[0].To.Method, c.HitID, i)
		}
	}
}

// TestOrderGateSlowWorker: a worker whose run of messages takes longer
// than the stall time, while another waits for its turn, does not pass the
// waiting one with its next message: waiting is not stalling.
func TestOrderGateSlowWorker(t *testing.T) {
	ctx := context.Background()
	base := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	g := newOrderGate(tapline.TopicHits, 50*time.Millisecond)
	hits := tapline.Partition{Topic: tapline.TopicHits}
	events := tapline.Partition{Topic: tapline.TopicEvents}
	g.own(hits)
	g.own(events)
	var mu sync.Mutex
	var order []int
	record := func(n int) {
		mu.Lock()
		order = append(order, n)
		mu.Unlock()
	}
	done := make(chan error, 2)
	go func() { // events: one message at second 5
		if err := g.wait(ctx, events, base.Add(5*time.Second)); err != nil {
			done <- err
			return
		}
		record(5)
		g.batchDone(events, 1, 10)
		done <- nil
	}()
	go func() { // hits: seconds 1 to 4, each taking 30 ms (all four longer than the stall), then 6
		for _, s := range []int{1, 2, 3, 4, 6} {
			if err := g.wait(ctx, hits, base.Add(time.Duration(s)*time.Second)); err != nil {
				done <- err
				return
			}
			record(s)
			time.Sleep(30 * time.Millisecond)
		}
		g.batchDone(hits, 5, 10)
		done <- nil
	}()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if want := []int{1, 2, 3, 4, 5, 6}; !slices.Equal(order, want) {
		t.Fatalf("processed in order %v, want %v", order, want)
	}
}
