package pebble_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"tapline"
	"tapline/bustest"
	"tapline/kafka"
	"tapline/pebble"
)

// quiet is a logger for tests: outages are their point, so the warnings are
// expected.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// mustOpenSpool opens a spool in front of bus in dir, with short timeouts
// and opts applied, and closes it when the test ends.
func mustOpenSpool(t *testing.T, bus tapline.Bus, dir string, opts ...func(*pebble.Spool)) *pebble.Spool {
	t.Helper()
	s := pebble.NewSpool(bus, dir)
	s.AttemptTimeout = 2 * time.Second
	s.RetryInterval = 20 * time.Millisecond
	s.Logger = quiet
	for _, o := range opts {
		o(s)
	}
	if err := s.Open(); err != nil {
		t.Fatalf("Spool.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Spool.Close: %v", err)
		}
	})
	return s
}

// outage is the real pebble bus behind a switch: down closes the bus, whose
// Publish then answers EUNAVAILABLE as a closed bus does; up opens a new bus
// on the same directory, with the messages published before.
type outage struct {
	t   *testing.T
	dir string
	cur atomic.Pointer[pebble.Bus]
}

func newOutage(t *testing.T) *outage {
	o := &outage{t: t, dir: t.TempDir()}
	o.up()
	t.Cleanup(func() { o.cur.Load().Close() })
	return o
}

func (o *outage) up() {
	o.t.Helper()
	b := pebble.NewBus(o.dir)
	b.NumPartitions = 4
	b.Logger = quiet
	if err := b.Open(); err != nil {
		o.t.Fatalf("Bus.Open: %v", err)
	}
	o.cur.Store(b)
}

func (o *outage) down() {
	o.t.Helper()
	if err := o.cur.Load().Close(); err != nil {
		o.t.Fatalf("Bus.Close: %v", err)
	}
}

func (o *outage) Publish(ctx context.Context, msgs ...tapline.Message) error {
	return o.cur.Load().Publish(ctx, msgs...)
}

func (o *outage) Partitions(ctx context.Context, topic string) (int, error) {
	return o.cur.Load().Partitions(ctx, topic)
}

func (o *outage) Fetch(ctx context.Context, topic string, part int, offset int64, limit int) ([]tapline.Message, error) {
	return o.cur.Load().Fetch(ctx, topic, part, offset, limit)
}

func (o *outage) Close() error { return nil }

func msg(topic, key, value string) tapline.Message {
	return tapline.Message{Topic: topic, Key: []byte(key), Value: []byte(value)}
}

// waitDrained waits until the spool has replayed its backlog and is back in
// normal mode.
func waitDrained(t *testing.T, s *pebble.Spool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for s.Spooling() || s.SpooledMessages() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("spool not drained: spooling %v, %d messages, %d bytes left", s.Spooling(), s.SpooledMessages(), s.SpooledBytes())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := s.SpooledBytes(); got != 0 {
		t.Errorf("SpooledBytes after draining = %d, want 0", got)
	}
}

// collect fetches every partition of topic until want messages arrived,
// checks that no more follow, and returns the values of each key in fetch
// order.
func collect(t *testing.T, bus tapline.Bus, topic string, want int) map[string][]string {
	t.Helper()
	return collectMessages(t, bus, topic, want, false)
}

// collectAtLeastOnce is collect for a spool in front of Kafka, which
// delivers at least once (docs/spool.md): a publish that timed out after
// the broker took it is sent again. A value seen again is dropped, as the
// matcher drops it by its id, and want counts distinct values; the order
// of first arrivals is what checkKeys then compares.
func collectAtLeastOnce(t *testing.T, bus tapline.Bus, topic string, want int) map[string][]string {
	t.Helper()
	return collectMessages(t, bus, topic, want, true)
}

func collectMessages(t *testing.T, bus tapline.Bus, topic string, want int, atLeastOnce bool) map[string][]string {
	t.Helper()
	seen := make(map[string]bool)
	dups := 0
	ctx := testCtx(t)
	n, err := bus.Partitions(ctx, topic)
	if err != nil {
		t.Fatalf("Partitions(%s): %v", topic, err)
	}
	byKey := make(map[string][]string)
	next := make([]int64, n)
	got := 0
	for got < want {
		progress := false
		for p := range n {
			fctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			msgs, err := bus.Fetch(fctx, topic, p, next[p], 1000)
			cancel()
			if errors.Is(err, context.DeadlineExceeded) {
				continue
			}
			if err != nil {
				t.Fatalf("Fetch(%s, %d, %d): %v", topic, p, next[p], err)
			}
			for _, m := range msgs {
				next[p] = m.Offset + 1
				id := string(m.Key) + "\x00" + string(m.Value)
				if atLeastOnce && seen[id] {
					dups++
					continue
				}
				seen[id] = true
				byKey[string(m.Key)] = append(byKey[string(m.Key)], string(m.Value))
				got++
			}
			progress = progress || len(msgs) > 0
		}
		if !progress && ctx.Err() != nil {
			t.Fatalf("fetched %d messages of %s, want %d", got, topic, want)
		}
	}
	for p := range n {
		fctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		msgs, err := bus.Fetch(fctx, topic, p, next[p], 1000)
		cancel()
		for _, m := range msgs {
			if err == nil && !(atLeastOnce && seen[string(m.Key)+"\x00"+string(m.Value)]) {
				got++
			}
		}
	}
	if dups > 0 {
		t.Logf("%d messages of %s delivered again (at least once)", dups, topic)
	}
	if got != want {
		t.Errorf("fetched %d messages of %s, want exactly %d", got, topic, want)
	}
	return byKey
}

// seq returns prefix0 .. prefix(n-1).
func seq(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}

// checkKeys checks that each key has exactly the values of want, in order.
func checkKeys(t *testing.T, got, want map[string][]string) {
	t.Helper()
	for k, w := range want {
		if g := got[k]; strings.Join(g, ",") != strings.Join(w, ",") {
			t.Errorf("key %s: got %d values %v, want %d values %v", k, len(g), g, len(w), w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected key %s with values %v", k, got[k])
		}
	}
}

func TestSpool_Conformance(t *testing.T) {
	t.Parallel()
	bustest.Run(t, func(t *testing.T) tapline.Bus {
		return mustOpenSpool(t, newOutage(t), t.TempDir())
	})
}

func TestSpool_Validate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(*pebble.Spool)
		want string // a substring of the error, "" for none
	}{
		{"defaults", func(*pebble.Spool) {}, ""},
		{"no bus", func(s *pebble.Spool) { s.Bus = nil }, "Bus"},
		{"no dir", func(s *pebble.Spool) { s.Dir = "" }, "Dir"},
		{"zero max bytes", func(s *pebble.Spool) { s.MaxBytes = 0 }, "MaxBytes"},
		{"negative attempt timeout", func(s *pebble.Spool) { s.AttemptTimeout = -time.Second }, "AttemptTimeout"},
		{"zero retry interval", func(s *pebble.Spool) { s.RetryInterval = 0 }, "RetryInterval"},
		{"zero replay batch", func(s *pebble.Spool) { s.ReplayBatch = 0 }, "ReplayBatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := pebble.NewSpool(pebble.NewBus(t.TempDir()), t.TempDir())
			tt.edit(s)
			err := s.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate() = %v, want an error naming %s", err, tt.want)
			}
		})
	}
}

// startCluster starts a one-broker kfake cluster keeping its data in dir,
// on port (0 for any).
func startCluster(t *testing.T, dir string, port int, opts ...kfake.Opt) (*kfake.Cluster, int) {
	t.Helper()
	opts = append([]kfake.Opt{kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(dir)}, opts...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatalf("start kfake cluster on port %d: %v", port, err)
	}
	t.Cleanup(c.Close)
	_, p, err := net.SplitHostPort(c.ListenAddrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	port, _ = strconv.Atoi(p)
	return c, port
}

// freePort returns a port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func openKafka(t *testing.T, port int) *kafka.Bus {
	t.Helper()
	b := kafka.NewBus(fmt.Sprintf("127.0.0.1:%d", port))
	b.NumPartitions = 4
	b.FetchMaxWait = 100 * time.Millisecond
	b.Logger = quiet
	if err := b.Open(testCtx(t)); err != nil {
		t.Fatalf("kafka Open: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestSpool_HealthyKafka(t *testing.T) {
	t.Parallel()
	_, port := startCluster(t, t.TempDir(), 0)
	s := mustOpenSpool(t, openKafka(t, port), t.TempDir())
	topic := bustest.Topic(t)

	const writers, each = 4, 25
	want := make(map[string][]string)
	var wg sync.WaitGroup
	for w := range writers {
		key := fmt.Sprintf("k%d", w)
		values := seq(key+"-", each)
		want[key] = values
		wg.Go(func() {
			for _, v := range values {
				if err := s.Publish(testCtx(t), msg(topic, key, v)); err != nil {
					t.Errorf("Publish(%s): %v", v, err)
					return
				}
				if n := s.SpooledMessages(); n != 0 {
					t.Errorf("SpooledMessages after Publish(%s) to a healthy bus = %d, want 0", v, n)
				}
			}
		})
	}
	wg.Wait()
	if s.Spooling() {
		t.Errorf("Spooling() = true with a healthy bus, want false")
	}
	checkKeys(t, collect(t, s, topic, writers*each), want)
}

func TestSpool_KafkaOutage(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	c, port := startCluster(t, data, freePort(t))
	bus := openKafka(t, port)
	s := mustOpenSpool(t, bus, t.TempDir())
	topic := bustest.Topic(t)
	if _, err := s.Partitions(testCtx(t), topic); err != nil {
		t.Fatalf("Partitions: %v", err)
	}
	// Published before the outage, straight to Kafka.
	if err := s.Publish(testCtx(t), msg(topic, "k0", "before")); err != nil {
		t.Fatalf("Publish before the outage: %v", err)
	}
	c.Close()

	// Writers publish through the outage and on after the broker returns,
	// until the spool has been back in normal mode for a while, so that
	// some publishes meet the switch back.
	const writers = 4
	var (
		wg        sync.WaitGroup
		stop      atomic.Bool
		published atomic.Int64
		sent      = make([][]string, writers)
	)
	for w := range writers {
		key := fmt.Sprintf("k%d", w)
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				v := fmt.Sprintf("%s-%d", key, i)
				if err := s.Publish(testCtx(t), msg(topic, key, v)); err != nil {
					t.Errorf("Publish(%s): %v", v, err)
					return
				}
				sent[w] = append(sent[w], v)
				published.Add(1)
				// About 800 messages/s in all: well below what the
				// replayer moves even on a loaded machine, so the backlog
				// can drain while publishes keep coming.
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); !cond(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) || t.Failed() {
				stop.Store(true)
				wg.Wait()
				t.Fatalf("gave up waiting until %s", what)
			}
		}
	}

	waitFor("200 messages are published", func() bool { return published.Load() >= 200 })
	if !s.Spooling() {
		t.Errorf("Spooling() = false during the outage, want true")
	}
	if n := s.SpooledMessages(); n == 0 {
		t.Errorf("SpooledMessages during the outage = 0, want > 0")
	}
	if b := s.SpooledBytes(); b == 0 {
		t.Errorf("SpooledBytes during the outage = 0, want > 0")
	}
	startCluster(t, data, port)
	waitFor("the spool is back in normal mode", func() bool { return !s.Spooling() })
	after := published.Load()
	waitFor("100 more messages are published", func() bool { return published.Load() >= after+100 })
	stop.Store(true)
	wg.Wait()
	waitDrained(t, s)

	want := map[string][]string{"k0": {"before"}}
	for w, vs := range sent {
		key := fmt.Sprintf("k%d", w)
		want[key] = append(want[key], vs...)
	}
	checkKeys(t, collectAtLeastOnce(t, s, topic, int(published.Load())+1), want)
}

func TestSpool_Full(t *testing.T) {
	t.Parallel()
	bus := newOutage(t)
	const maxBytes = 2000
	s := mustOpenSpool(t, bus, t.TempDir(), func(s *pebble.Spool) { s.MaxBytes = maxBytes })
	topic := bustest.Topic(t)
	bus.down()

	value := strings.Repeat("v", 100)
	var accepted []string
	var err error
	for i := 0; i < 100; i++ {
		v := fmt.Sprintf("%03d-%s", i, value)
		if err = s.Publish(testCtx(t), msg(topic, "k", v)); err != nil {
			break
		}
		accepted = append(accepted, v)
	}
	if got := tapline.ErrorCode(err); got != tapline.EUNAVAILABLE {
		t.Fatalf("Publish into a full spool: code %q (%v), want %q", got, err, tapline.EUNAVAILABLE)
	}
	if len(accepted) == 0 {
		t.Fatalf("no Publish accepted before the spool was full")
	}
	if got := s.SpooledBytes(); got > maxBytes || got <= maxBytes-200 {
		t.Errorf("SpooledBytes when full = %d, want in (%d, %d]", got, maxBytes-200, maxBytes)
	}
	if got := s.SpooledMessages(); got != int64(len(accepted)) {
		t.Errorf("SpooledMessages = %d, want %d", got, len(accepted))
	}
	big := msg(topic, "k", strings.Repeat("x", maxBytes))
	if err := s.Publish(testCtx(t), big); tapline.ErrorCode(err) != tapline.ETOOLARGE {
		t.Errorf("Publish larger than the spool: code %q (%v), want %q", tapline.ErrorCode(err), err, tapline.ETOOLARGE)
	}

	bus.up()
	waitDrained(t, s)
	if err := s.Publish(testCtx(t), msg(topic, "k", "after")); err != nil {
		t.Fatalf("Publish after the drain: %v", err)
	}
	if n := s.SpooledMessages(); n != 0 {
		t.Errorf("SpooledMessages after a Publish to the healthy bus = %d, want 0", n)
	}
	checkKeys(t, collect(t, s, topic, len(accepted)+1), map[string][]string{"k": append(accepted, "after")})
}

func TestSpool_ReopenReplays(t *testing.T) {
	t.Parallel()
	bus := newOutage(t)
	dir := t.TempDir()
	topic := bustest.Topic(t)
	want := map[string][]string{"a": seq("a", 20), "b": seq("b", 20)}

	s := pebble.NewSpool(bus, dir)
	s.Logger, s.RetryInterval = quiet, 20*time.Millisecond
	if err := s.Open(); err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.Publish(testCtx(t), msg(topic, "a", "a0"), msg(topic, "b", "b0")); err != nil {
		t.Fatalf("Publish to the healthy bus: %v", err)
	}
	bus.down()
	for i := 1; i < 20; i++ {
		if err := s.Publish(testCtx(t), msg(topic, "a", want["a"][i]), msg(topic, "b", want["b"][i])); err != nil {
			t.Fatalf("Publish during the outage: %v", err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Publish(testCtx(t), msg(topic, "a", "x")); tapline.ErrorCode(err) != tapline.EUNAVAILABLE {
		t.Errorf("Publish after Close: code %q (%v), want %q", tapline.ErrorCode(err), err, tapline.EUNAVAILABLE)
	}

	// Reopen while the bus is still down: the backlog is there.
	s2 := mustOpenSpool(t, bus, dir)
	if !s2.Spooling() {
		t.Errorf("Spooling() after reopening with a backlog = false, want true")
	}
	if got, want := s2.SpooledMessages(), int64(38); got != want {
		t.Errorf("SpooledMessages after reopening = %d, want %d", got, want)
	}
	// A publish while the backlog waits lands after it.
	if err := s2.Publish(testCtx(t), msg(topic, "a", "a20")); err != nil {
		t.Fatalf("Publish after reopening: %v", err)
	}
	want["a"] = append(want["a"], "a20")
	bus.up()
	waitDrained(t, s2)
	checkKeys(t, collect(t, s2, topic, 41), want)
}

func TestSpool_ErrorsPassThrough(t *testing.T) {
	t.Parallel()
	bus := newOutage(t)
	s := mustOpenSpool(t, bus, t.TempDir())
	topic := bustest.Topic(t)
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		msg  tapline.Message
		want string
	}{
		{"no topic", testCtx(t), msg("", "k", "v"), tapline.EINVALID},
		{"caller gave up", cancelled, msg(topic, "k", "v"), tapline.EINTERNAL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Publish(tt.ctx, tt.msg)
			if got := tapline.ErrorCode(err); got != tt.want {
				t.Errorf("Publish: code %q (%v), want %q", got, err, tt.want)
			}
			if s.Spooling() || s.SpooledMessages() != 0 {
				t.Errorf("after Publish: Spooling() = %v, SpooledMessages() = %d; want false, 0", s.Spooling(), s.SpooledMessages())
			}
		})
	}
}

func TestSpool_DropsRejectedOnReplay(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	c, port := startCluster(t, data, freePort(t))
	bus := openKafka(t, port)
	s := mustOpenSpool(t, bus, t.TempDir())
	topic := bustest.Topic(t)
	if _, err := s.Partitions(testCtx(t), topic); err != nil {
		t.Fatalf("Partitions: %v", err)
	}
	c.Close()
	huge := strings.Repeat("h", 4000)
	msgs := []tapline.Message{msg(topic, "k", "v0"), msg(topic, "k", huge), msg(topic, "k", "v2")}
	for _, m := range msgs {
		if err := s.Publish(testCtx(t), m); err != nil {
			t.Fatalf("Publish during the outage: %v", err)
		}
	}
	// The broker comes back refusing messages of more than 2000 bytes.
	startCluster(t, data, port, kfake.BrokerConfigs(map[string]string{"message.max.bytes": "2000"}))
	waitDrained(t, s)
	if got := s.DroppedMessages(); got != 1 {
		t.Errorf("DroppedMessages = %d, want 1", got)
	}
	checkKeys(t, collect(t, s, topic, 2), map[string][]string{"k": {"v0", "v2"}})
}
