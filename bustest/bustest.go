package bustest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"tapline"
)

// timeout bounds each subtest's waits so a broken bus fails instead of
// hanging.
const timeout = 20 * time.Second

// Run runs the bus conformance suite; open returns a bus for each subtest.
// Subtests use their own unique topic names (derived from t.Name() plus a
// random suffix), because one Kafka cluster may serve them all. Run closes
// each bus when its subtest ends.
func Run(t *testing.T, open func(t *testing.T) tapline.Bus) {
	tests := []struct {
		name string
		fn   func(t *testing.T, bus tapline.Bus)
	}{
		{"PublishFetch", testPublishFetch},
		{"EqualKeysOnePartitionInOrder", testEqualKeys},
		{"KeysSpreadOverPartitions", testKeysSpread},
		{"PartitionsStable", testPartitionsStable},
		{"FetchFromMiddle", testFetchFromMiddle},
		{"FetchWaitsForPublish", testFetchWaits},
		{"FetchCancelled", testFetchCancelled},
		{"FetchMax", testFetchMax},
		{"ConcurrentPublishers", testConcurrentPublishers},
		{"EmptyPublish", testEmptyPublish},
		{"CloseTwice", testCloseTwice},
		{"EndOffsets", testEndOffsets},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			bus := open(t)
			t.Cleanup(func() {
				if err := bus.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tt.fn(t, bus)
		})
	}
}

// Topic returns a topic name unique to t: its name made safe for Kafka plus
// a random suffix.
func Topic(t testing.TB) string {
	var b strings.Builder
	for _, r := range t.Name() {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	name := b.String()
	if len(name) > 200 {
		name = name[len(name)-200:]
	}
	var suffix [6]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		t.Fatalf("random topic suffix: %v", err)
	}
	return name + "-" + hex.EncodeToString(suffix[:])
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancel)
	return ctx
}

func msg(topic, key, value string) tapline.Message {
	return tapline.Message{Topic: topic, Key: []byte(key), Value: []byte(value)}
}

func partitions(t *testing.T, bus tapline.Bus, topic string) int {
	t.Helper()
	n, err := bus.Partitions(testContext(t), topic)
	if err != nil {
		t.Fatalf("Partitions(%s): %v", topic, err)
	}
	if n <= 0 {
		t.Fatalf("Partitions(%s) = %d, want > 0", topic, n)
	}
	return n
}

func publish(t *testing.T, bus tapline.Bus, msgs ...tapline.Message) {
	t.Helper()
	if err := bus.Publish(testContext(t), msgs...); err != nil {
		t.Fatalf("Publish(%d messages): %v", len(msgs), err)
	}
}

// collect fetches every partition of topic from offset 0 until want
// messages arrived in all, and returns them by partition in fetch order. It
// fails the test on a timeout, a Fetch error, or more than want messages.
func collect(t *testing.T, bus tapline.Bus, topic string, want int) map[int][]tapline.Message {
	t.Helper()
	n := partitions(t, bus, topic)
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()

	var (
		mu    sync.Mutex
		got   = make(map[int][]tapline.Message)
		total int
		errs  []error
		wg    sync.WaitGroup
	)
	for p := range n {
		wg.Go(func() {
			offset := int64(0)
			for {
				msgs, err := bus.Fetch(ctx, topic, p, offset, 100)
				if err != nil {
					if ctx.Err() == nil || !errors.Is(err, ctx.Err()) {
						mu.Lock()
						errs = append(errs, fmt.Errorf("Fetch(%s, %d, %d): %w", topic, p, offset, err))
						mu.Unlock()
						cancel()
					}
					return
				}
				if len(msgs) == 0 {
					mu.Lock()
					errs = append(errs, fmt.Errorf("Fetch(%s, %d, %d) returned no messages and no error", topic, p, offset))
					mu.Unlock()
					cancel()
					return
				}
				mu.Lock()
				got[p] = append(got[p], msgs...)
				total += len(msgs)
				if total >= want {
					cancel()
				}
				mu.Unlock()
				offset = msgs[len(msgs)-1].Offset + 1
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
	if total != want {
		t.Fatalf("collected %d messages from %s, want %d", total, topic, want)
	}
	return got
}

// only returns the one partition that holds messages, failing otherwise.
func only(t *testing.T, got map[int][]tapline.Message) (int, []tapline.Message) {
	t.Helper()
	if len(got) != 1 {
		t.Fatalf("messages on %d partitions, want 1", len(got))
	}
	for p, msgs := range got {
		return p, msgs
	}
	panic("unreachable")
}

func values(msgs []tapline.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = string(m.Value)
	}
	return out
}

func seq(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

func testPublishFetch(t *testing.T, bus tapline.Bus) {
	topic := Topic(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	stamp := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	sent := []tapline.Message{
		{Topic: topic, Key: []byte("alpha"), Value: []byte(`{"hit":"a"}`), Partition: 99, Offset: 12345},
		{Topic: topic, Key: []byte{0, 1, 2, 0xff}, Value: []byte{0, 0xfe, 0, 'x'}},
		{Topic: topic, Key: []byte("gamma"), Value: big},
		{Topic: topic, Key: []byte("delta"), Value: []byte("stamped"), Time: stamp},
	}
	before := time.Now().Add(-time.Minute)
	publish(t, bus, sent...)
	after := time.Now().Add(time.Minute)

	got := collect(t, bus, topic, len(sent))
	byKey := make(map[string]tapline.Message)
	for p, msgs := range got {
		for _, m := range msgs {
			if m.Topic != topic {
				t.Errorf("message %q: Topic = %q, want %q", m.Key, m.Topic, topic)
			}
			if m.Partition != p {
				t.Errorf("message %q fetched from partition %d says Partition = %d", m.Key, p, m.Partition)
			}
			if m.Offset < 0 {
				t.Errorf("message %q: Offset = %d, want >= 0", m.Key, m.Offset)
			}
			if m.Position() != fmt.Sprintf("%s/%d/%d", topic, p, m.Offset) {
				t.Errorf("message %q: Position() = %q", m.Key, m.Position())
			}
			byKey[string(m.Key)] = m
		}
	}
	for _, s := range sent {
		m, ok := byKey[string(s.Key)]
		if !ok {
			t.Errorf("message with key %q not fetched", s.Key)
			continue
		}
		if !bytes.Equal(m.Value, s.Value) {
			t.Errorf("message %q: value of %d bytes differs from the %d bytes published", s.Key, len(m.Value), len(s.Value))
		}
		switch {
		case !s.Time.IsZero():
			if !m.Time.Equal(s.Time) {
				t.Errorf("message %q: Time = %v, want the published %v", s.Key, m.Time, s.Time)
			}
		case m.Time.Before(before) || m.Time.After(after):
			t.Errorf("message %q: Time = %v, want between %v and %v", s.Key, m.Time, before, after)
		}
	}
}

func testEqualKeys(t *testing.T, bus tapline.Bus) {
	topic := Topic(t)
	for call := range 5 {
		var batch []tapline.Message
		for i := range 10 {
			batch = append(batch, msg(topic, "same-key", fmt.Sprintf("v%d", call*10+i)))
		}
		publish(t, bus, batch...)
	}
	_, msgs := only(t, collect(t, bus, topic, 50))
	if got, want := values(msgs), seq("v", 0, 50); !slices.Equal(got, want) {
		t.Errorf("values in fetch order = %v, want %v", got, want)
	}
	for i := 1; i < len(msgs); i++ {
		if msgs[i].Offset <= msgs[i-1].Offset {
			t.Errorf("offset %d follows offset %d, want increasing", msgs[i].Offset, msgs[i-1].Offset)
		}
	}
}

func testKeysSpread(t *testing.T, bus tapline.Bus) {
	topic := Topic(t)
	n := partitions(t, bus, topic)
	if n < 2 {
		t.Skipf("topic has %d partition; spreading needs at least 2", n)
	}
	const keys = 64
	var batch []tapline.Message
	for round := range 2 {
		for k := range keys {
			batch = append(batch, msg(topic, fmt.Sprintf("key-%d", k), fmt.Sprintf("r%d", round)))
		}
	}
	publish(t, bus, batch...)
	got := collect(t, bus, topic, 2*keys)
	if len(got) < 2 {
		t.Errorf("%d keys landed on %d partition(s), want more than 1", keys, len(got))
	}
	home := make(map[string]int)
	for p, msgs := range got {
		for _, m := range msgs {
			if q, ok := home[string(m.Key)]; ok && q != p {
				t.Errorf("key %q on partitions %d and %d, want one", m.Key, q, p)
			}
			home[string(m.Key)] = p
		}
	}
	if len(home) != keys {
		t.Errorf("fetched %d distinct keys, want %d", len(home), keys)
	}
}

func testPartitionsStable(t *testing.T, bus tapline.Bus) {
	topic := Topic(t)
	first := partitions(t, bus, topic)
	if again := partitions(t, bus, topic); again != first {
		t.Errorf("second Partitions = %d, want %d", again, first)
	}
	publish(t, bus, msg(topic, "k", "v"))
	if later := partitions(t, bus, topic); later != first {
		t.Errorf("Partitions after Publish = %d, want %d", later, first)
	}
}

func testFetchFromMiddle(t *testing.T, bus tapline.Bus) {
	topic := Topic(t)
	var batch []tapline.Message
	for i := range 10 {
		batch = append(batch, msg(topic, "mid-key", fmt.Sprintf("v%d", i)))
	}
	publish(t, bus, batch...)
	p, all := only(t, collect(t, bus, topic, 10))

	ctx := testContext(t)
	offset := all[5].Offset
	var got []tapline.Message
	for len(got) < 5 {
		msgs, err := bus.Fetch(ctx, topic, p, offset, 100)
		if err != nil {
			t.Fatalf("Fetch(%s, %d, %d): %v", topic, p, offset, err)
		}
		got = append(got, msgs...)
		offset = msgs[len(msgs)-1].Offset + 1
	}
	if got[0].Offset != all[5].Offset {
		t.Errorf("first offset = %d, want %d", got[0].Offset, all[5].Offset)
	}
	if v, want := values(got), seq("v", 5, 10); !slices.Equal(v, want) {
		t.Errorf("values from the middle = %v, want %v", v, want)
	}
}

// endOf publishes one message with key and returns its partition and the
// offset after it.
func endOf(t *testing.T, bus tapline.Bus, topic, key string) (int, int64) {
	t.Helper()
	publish(t, bus, msg(topic, key, "first"))
	p, msgs := only(t, collect(t, bus, topic, 1))
	return p, msgs[0].Offset + 1
}

func testFetchWaits(t *testing.T, bus tapline.Bus) {
	topic := Topic(t)
	p, end := endOf(t, bus, topic, "wait-key")

	// Nothing is there yet: a Fetch with a short deadline ends with it.
	short, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	msgs, err := bus.Fetch(short, topic, p, end, 10)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Fetch at the end = %d messages, %v; want context.DeadlineExceeded", len(msgs), err)
	}

	// A later Publish wakes a waiting Fetch.
	published := make(chan error, 1)
	go func() {
		time.Sleep(20 * time.Millisecond) // likely, not necessarily, after Fetch starts waiting
		published <- bus.Publish(testContext(t), msg(topic, "wait-key", "second"))
	}()
	msgs, err = bus.Fetch(testContext(t), topic, p, end, 10)
	if err != nil {
		t.Fatalf("Fetch at the end while publishing: %v", err)
	}
	if perr := <-published; perr != nil {
		t.Fatalf("Publish: %v", perr)
	}
	if got := values(msgs); !slices.Equal(got, []string{"second"}) {
		t.Errorf("values = %v, want [second]", got)
	}
	if msgs[0].Offset < end {
		t.Errorf("offset = %d, want >= %d", msgs[0].Offset, end)
	}
}

func testFetchCancelled(t *testing.T, bus tapline.Bus) {
	topic := Topic(t)
	p, end := endOf(t, bus, topic, "cancel-key")
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		time.Sleep(20 * time.Millisecond)
		cancel()
	}()
	msgs, err := bus.Fetch(ctx, topic, p, end, 10)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Fetch cancelled while waiting = %d messages, %v; want context.Canceled", len(msgs), err)
	}
	if len(msgs) != 0 {
		t.Errorf("Fetch cancelled returned %d messages, want 0", len(msgs))
	}
}

func testFetchMax(t *testing.T, bus tapline.Bus) {
	topic := Topic(t)
	var batch []tapline.Message
	for i := range 20 {
		batch = append(batch, msg(topic, "max-key", fmt.Sprintf("v%d", i)))
	}
	publish(t, bus, batch...)
	p, all := only(t, collect(t, bus, topic, 20))

	ctx := testContext(t)
	tests := []struct {
		name string
		max  int
	}{
		{"one", 1},
		{"five", 5},
		{"seven", 7},
		{"more than there are", 1000},
	}
	for _, tt := range tests {
		offset := all[0].Offset
		var got []tapline.Message
		for len(got) < len(all) {
			msgs, err := bus.Fetch(ctx, topic, p, offset, tt.max)
			if err != nil {
				t.Fatalf("%s: Fetch(max %d): %v", tt.name, tt.max, err)
			}
			if len(msgs) == 0 || len(msgs) > tt.max {
				t.Fatalf("%s: Fetch(max %d) returned %d messages, want 1..%d", tt.name, tt.max, len(msgs), tt.max)
			}
			got = append(got, msgs...)
			offset = msgs[len(msgs)-1].Offset + 1
		}
		if v, want := values(got), seq("v", 0, 20); !slices.Equal(v, want) {
			t.Errorf("%s: values = %v, want %v", tt.name, v, want)
		}
	}
}

func testConcurrentPublishers(t *testing.T, bus tapline.Bus) {
	topic := Topic(t)
	const (
		publishers = 8
		each       = 200
		perCall    = 2
		keysEach   = 5
	)
	partitions(t, bus, topic)
	ctx := testContext(t)
	errs := make(chan error, publishers)
	var wg sync.WaitGroup
	for g := range publishers {
		wg.Go(func() {
			for i := 0; i < each; i += perCall {
				var batch []tapline.Message
				for j := i; j < i+perCall; j++ {
					batch = append(batch, msg(topic, fmt.Sprintf("g%d-k%d", g, j%keysEach), fmt.Sprintf("%d/%d", g, j)))
				}
				if err := bus.Publish(ctx, batch...); err != nil {
					errs <- fmt.Errorf("publisher %d: Publish: %w", g, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	got := collect(t, bus, topic, publishers*each)
	seen := make(map[string]int)
	home := make(map[string]int)
	last := make(map[string]int)
	for p, msgs := range got {
		for _, m := range msgs {
			var g, j int
			if _, err := fmt.Sscanf(string(m.Value), "%d/%d", &g, &j); err != nil {
				t.Fatalf("value %q: %v", m.Value, err)
			}
			seen[string(m.Value)]++
			key := string(m.Key)
			if want := fmt.Sprintf("g%d-k%d", g, j%keysEach); key != want {
				t.Errorf("value %q has key %q, want %q", m.Value, key, want)
			}
			if q, ok := home[key]; ok && q != p {
				t.Errorf("key %q on partitions %d and %d, want one", key, q, p)
			}
			home[key] = p
			if prev, ok := last[key]; ok && j <= prev {
				t.Errorf("key %q: message %d fetched after %d, want publish order", key, j, prev)
			}
			last[key] = j
		}
	}
	for g := range publishers {
		for j := range each {
			if v := fmt.Sprintf("%d/%d", g, j); seen[v] != 1 {
				t.Errorf("message %s fetched %d times, want 1", v, seen[v])
			}
		}
	}
}

func testEmptyPublish(t *testing.T, bus tapline.Bus) {
	ctx := testContext(t)
	if err := bus.Publish(ctx); err != nil {
		t.Errorf("Publish() = %v, want nil", err)
	}
	if err := bus.Publish(ctx, []tapline.Message{}...); err != nil {
		t.Errorf("Publish(empty slice) = %v, want nil", err)
	}
	// Nothing was written: a fresh topic's partitions stay empty.
	topic := Topic(t)
	partitions(t, bus, topic)
	if err := bus.Publish(ctx); err != nil {
		t.Errorf("Publish() after Partitions = %v, want nil", err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	msgs, err := bus.Fetch(short, topic, 0, 0, 10)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Fetch on an empty topic = %d messages, %v; want context.DeadlineExceeded", len(msgs), err)
	}
}

func testCloseTwice(t *testing.T, bus tapline.Bus) {
	topic := Topic(t)
	publish(t, bus, msg(topic, "k", "v"))
	collect(t, bus, topic, 1)
	if err := bus.Close(); err != nil {
		t.Errorf("first Close: %v", err)
	}
	if err := bus.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// testEndOffsets checks a bus that implements tapline.EndOffsetReader (the
// others skip it): a new topic's partitions end at 0, each partition ends
// one past its last message after a publish, and a closed bus fails.
func testEndOffsets(t *testing.T, bus tapline.Bus) {
	r, ok := bus.(tapline.EndOffsetReader)
	if !ok {
		t.Skipf("%T does not implement tapline.EndOffsetReader", bus)
	}
	ctx := testContext(t)
	topic := Topic(t)
	ends, err := r.EndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("EndOffsets of a new topic: %v", err)
	}
	n := partitions(t, bus, topic)
	if len(ends) != n {
		t.Fatalf("EndOffsets of a new topic: %d partitions, want %d", len(ends), n)
	}
	for p, e := range ends {
		if e != 0 {
			t.Errorf("new topic: partition %d ends at %d, want 0", p, e)
		}
	}
	var msgs []tapline.Message
	for i := range 40 {
		msgs = append(msgs, msg(topic, fmt.Sprintf("key-%d", i%13), fmt.Sprintf("v%d", i)))
	}
	publish(t, bus, msgs...)
	got := collect(t, bus, topic, len(msgs))
	if ends, err = r.EndOffsets(ctx, topic); err != nil {
		t.Fatalf("EndOffsets after publishing: %v", err)
	}
	for p, e := range ends {
		want := int64(0)
		if ms := got[p]; len(ms) > 0 {
			want = ms[len(ms)-1].Offset + 1
		}
		if e != want {
			t.Errorf("partition %d ends at %d, want %d (one past its last message)", p, e, want)
		}
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.EndOffsets(ctx, topic); err == nil {
		t.Error("EndOffsets on a closed bus succeeded")
	}
}
