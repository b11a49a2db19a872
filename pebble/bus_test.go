package pebble

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"tapline"
	"tapline/bustest"
)

// mustOpenBus opens a bus with n partitions in dir and closes it when the
// test ends.
func mustOpenBus(tb testing.TB, dir string, n int) *Bus {
	tb.Helper()
	b := NewBus(dir)
	b.NumPartitions = n
	if err := b.Open(); err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { b.Close() })
	return b
}

func TestBus(t *testing.T) {
	t.Parallel()
	bustest.Run(t, func(t *testing.T) tapline.Bus { return mustOpenBus(t, t.TempDir(), DefaultPartitions) })
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func msg(topic, key, value string) tapline.Message {
	return tapline.Message{Topic: topic, Key: []byte(key), Value: []byte(value)}
}

func mustPublish(t *testing.T, b *Bus, msgs ...tapline.Message) {
	t.Helper()
	if err := b.Publish(testCtx(t), msgs...); err != nil {
		t.Fatalf("Publish: %v", err)
	}
}

// fetchAll fetches a partition from offset until it has n messages.
func fetchAll(t *testing.T, b *Bus, topic string, part int, offset int64, n int) []tapline.Message {
	t.Helper()
	var got []tapline.Message
	for len(got) < n {
		msgs, err := b.Fetch(testCtx(t), topic, part, offset, 100)
		if err != nil {
			t.Fatalf("Fetch(%s, %d, %d) after %d messages: %v", topic, part, offset, len(got), err)
		}
		got = append(got, msgs...)
		offset = msgs[len(msgs)-1].Offset + 1
	}
	return got
}

func offsets(msgs []tapline.Message) []int64 {
	var out []int64
	for _, m := range msgs {
		out = append(out, m.Offset)
	}
	return out
}

func span(from, to int64) []int64 {
	var out []int64
	for o := from; o < to; o++ {
		out = append(out, o)
	}
	return out
}

func TestBusReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b := mustOpenBus(t, dir, 1)
	for i := range 10 {
		mustPublish(t, b, msg("hits", "k", fmt.Sprintf("v%d", i)))
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b.Publish(t.Context(), msg("hits", "k", "late")); tapline.ErrorCode(err) != tapline.EUNAVAILABLE {
		t.Errorf("Publish on a closed bus: %v, want %s", err, tapline.EUNAVAILABLE)
	}
	if _, err := b.Fetch(t.Context(), "hits", 0, 0, 1); tapline.ErrorCode(err) != tapline.EUNAVAILABLE {
		t.Errorf("Fetch on a closed bus: %v, want %s", err, tapline.EUNAVAILABLE)
	}

	b = mustOpenBus(t, dir, 1)
	mustPublish(t, b, msg("hits", "k", "v10"))
	got := fetchAll(t, b, "hits", 0, 0, 11)
	if want := span(0, 11); !slices.Equal(offsets(got), want) {
		t.Errorf("offsets after reopen = %v, want %v", offsets(got), want)
	}
	for i, m := range got {
		if want := fmt.Sprintf("v%d", i); string(m.Value) != want || string(m.Key) != "k" {
			t.Errorf("message %d = %q/%q, want k/%s", i, m.Key, m.Value, want)
		}
	}
}

func TestBusFetchBlocks(t *testing.T) {
	t.Parallel()
	b := mustOpenBus(t, t.TempDir(), 1)
	type result struct {
		msgs []tapline.Message
		err  error
	}
	done := make(chan result, 1)
	go func() {
		msgs, err := b.Fetch(testCtx(t), "events", 0, 0, 10)
		done <- result{msgs, err}
	}()
	select {
	case r := <-done:
		t.Fatalf("Fetch on an empty partition returned %d messages, %v before any Publish", len(r.msgs), r.err)
	case <-time.After(50 * time.Millisecond):
	}
	mustPublish(t, b, msg("events", "k", "v0"))
	r := <-done
	if r.err != nil || len(r.msgs) != 1 || string(r.msgs[0].Value) != "v0" || r.msgs[0].Offset != 0 {
		t.Fatalf("Fetch woken by Publish = %+v, %v; want [v0 at offset 0]", r.msgs, r.err)
	}

	// A waiting Fetch ends with its context and with Close.
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		_, err := b.Fetch(ctx, "events", 0, 1, 10)
		done <- result{nil, err}
	}()
	cancel()
	if r := <-done; !errors.Is(r.err, context.Canceled) {
		t.Errorf("Fetch after cancel: %v, want context.Canceled", r.err)
	}
	go func() {
		_, err := b.Fetch(t.Context(), "events", 0, 1, 10)
		done <- result{nil, err}
	}()
	time.Sleep(10 * time.Millisecond) // likely, not necessarily, waiting by now; either way it must end
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if r := <-done; tapline.ErrorCode(r.err) != tapline.EUNAVAILABLE {
		t.Errorf("Fetch across Close: %v, want %s", r.err, tapline.EUNAVAILABLE)
	}
}

func TestBusConcurrentPublishers(t *testing.T) {
	t.Parallel()
	const (
		parts      = 3
		publishers = 16
		each       = 100
		keys       = 4
	)
	b := mustOpenBus(t, t.TempDir(), parts)
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	for g := range publishers {
		wg.Go(func() {
			for i := range each {
				// Every publisher writes every key, so publishers race on one partition.
				if err := b.Publish(testCtx(t), msg("t", fmt.Sprintf("key-%d", i%keys), fmt.Sprintf("%d/%d", g, i))); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Publish: %v", err)
	}

	perPart := make([]int, parts)
	for k := range keys {
		perPart[partitionOf(fmt.Appendf(nil, "key-%d", k), parts)] += publishers * each / keys
	}
	total := 0
	for p := range parts {
		msgs := fetchAll(t, b, "t", p, 0, perPart[p])
		total += len(msgs)
		if want := span(0, int64(perPart[p])); !slices.Equal(offsets(msgs), want) {
			t.Errorf("partition %d offsets = %v, want dense 0..%d", p, offsets(msgs), perPart[p]-1)
		}
		last := make(map[string]int) // publisher/key → last sequence number
		for _, m := range msgs {
			var g, i int
			if _, err := fmt.Sscanf(string(m.Value), "%d/%d", &g, &i); err != nil {
				t.Fatalf("value %q: %v", m.Value, err)
			}
			if want := partitionOf(m.Key, parts); m.Partition != p || want != p {
				t.Errorf("message %s on partition %d, want %d", m.Value, p, want)
			}
			k := fmt.Sprintf("%d/%s", g, m.Key)
			if prev, ok := last[k]; ok && i <= prev {
				t.Errorf("publisher %d key %s: message %d after %d, want publish order", g, m.Key, i, prev)
			}
			last[k] = i
		}
	}
	if total != publishers*each {
		t.Errorf("fetched %d messages, want %d", total, publishers*each)
	}
}

func TestBusRetention(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b := mustOpenBus(t, dir, 1)
	for i := range 5 {
		mustPublish(t, b, msg("hits", "k", fmt.Sprintf("old%d", i)))
	}
	time.Sleep(5 * time.Millisecond)
	cutoff := time.Now()
	time.Sleep(5 * time.Millisecond)
	for i := range 5 {
		mustPublish(t, b, msg("hits", "k", fmt.Sprintf("new%d", i)))
	}
	if err := b.expire(cutoff); err != nil {
		t.Fatalf("expire: %v", err)
	}
	got := fetchAll(t, b, "hits", 0, 0, 5)
	if want := span(5, 10); !slices.Equal(offsets(got), want) {
		t.Errorf("offsets fetched from 0 after expiry = %v, want %v", offsets(got), want)
	}
	if string(got[0].Value) != "new0" {
		t.Errorf("first kept message = %q, want new0", got[0].Value)
	}

	// Everything expires; the next offsets survive, also across a reopen.
	if err := b.expire(time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("expire: %v", err)
	}
	short, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if msgs, err := b.Fetch(short, "hits", 0, 0, 10); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Fetch after everything expired = %d messages, %v; want to wait", len(msgs), err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	b = mustOpenBus(t, dir, 1)
	mustPublish(t, b, msg("hits", "k", "after"))
	got = fetchAll(t, b, "hits", 0, 0, 1)
	if len(got) != 1 || got[0].Offset != 10 || string(got[0].Value) != "after" {
		t.Errorf("Fetch from 0 after expiry and reopen = %+v, want [after at offset 10]", got)
	}
}

func TestBusPartitions(t *testing.T) {
	t.Parallel()
	ctx, dir := t.Context(), t.TempDir()
	b := mustOpenBus(t, dir, 4)
	if n, err := b.Partitions(ctx, "hits"); err != nil || n != 4 {
		t.Errorf("Partitions = %d, %v; want 4", n, err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	b = mustOpenBus(t, dir, 6)
	tests := []struct {
		name, topic string
		want        int
	}{
		{"ExistingKeepsItsCount", "hits", 4},
		{"NewGetsTheConfiguredCount", "events", 6},
	}
	for _, tt := range tests {
		if n, err := b.Partitions(ctx, tt.topic); err != nil || n != tt.want {
			t.Errorf("%s: Partitions(%s) = %d, %v; want %d", tt.name, tt.topic, n, err, tt.want)
		}
	}
	invalid := []struct {
		name string
		call func() error
	}{
		{"PartitionTooHigh", func() error { _, err := b.Fetch(ctx, "hits", 4, 0, 1); return err }},
		{"NegativePartition", func() error { _, err := b.Fetch(ctx, "hits", -1, 0, 1); return err }},
		{"EmptyTopicPublish", func() error { return b.Publish(ctx, msg("", "k", "v")) }},
		{"EmptyTopicPartitions", func() error { _, err := b.Partitions(ctx, ""); return err }},
	}
	for _, tt := range invalid {
		if err := tt.call(); tapline.ErrorCode(err) != tapline.EINVALID {
			t.Errorf("%s: %v, want %s", tt.name, err, tapline.EINVALID)
		}
	}
}

func TestBusValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(b *Bus)
	}{
		{"NoDir", func(b *Bus) { b.Dir = "" }},
		{"NoPartitions", func(b *Bus) { b.NumPartitions = 0 }},
		{"NoRetention", func(b *Bus) { b.Retention = 0 }},
	}
	for _, tt := range tests {
		b := NewBus(t.TempDir())
		tt.edit(b)
		if err := b.Open(); err == nil {
			b.Close()
			t.Errorf("%s: Open succeeded, want a validation error", tt.name)
		}
	}
}
